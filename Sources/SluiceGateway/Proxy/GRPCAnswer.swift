import Foundation
import NIOCore
import NIOHTTP1
import SluiceHTTP1

/// The gateway's own answer to a gRPC call: gRPC clients read the call's outcome from
/// `grpc-status`, never from the HTTP status, so a refusal is HTTP 200 with
/// `application/grpc` and the status in the header block that ends the stream (a
/// "trailers-only" response). Limits are RESOURCE_EXHAUSTED with when to come back
/// (`grpc-retry-pushback-ms`, which gRPC's retry policy honours); shedding and a pool without
/// replicas are UNAVAILABLE; the rest follow gRPC's HTTP-to-status table.
enum GRPCAnswer {
    /// The gRPC status code for the gateway's HTTP status.
    static func status(forHTTP status: Int) -> Int {
        switch status {
        case 400: 3  // INVALID_ARGUMENT: the request is malformed
        case 401: 16  // UNAUTHENTICATED
        case 403: 7  // PERMISSION_DENIED
        case 404: 12  // UNIMPLEMENTED: no pool serves the method
        case 408, 504: 4  // DEADLINE_EXCEEDED
        case 413, 429, 431: 8  // RESOURCE_EXHAUSTED
        case 499: 1  // CANCELLED
        case 502, 503: 14  // UNAVAILABLE
        default: 2  // UNKNOWN
        }
    }

    static func render(
        status httpStatus: Int, jsonBody: String, requestID: String?, fields extra: [(String, String)], close: Bool, allocator: ByteBufferAllocator
    ) -> ByteBuffer {
        var fields = [("content-type", "application/grpc"), ("grpc-status", String(status(forHTTP: httpStatus)))]
        fields.append(("grpc-message", percentEncoded(message(in: jsonBody))))
        for (name, value) in extra {
            if name == "retry-after", let seconds = Int(value) {
                fields.append(("grpc-retry-pushback-ms", String(seconds * 1000)))
            }
            fields.append((name, value))
        }
        if let requestID { fields.append(("x-request-id", requestID)) }
        fields.append(("content-length", "0"))
        if close { fields.append(("connection", "close")) }
        var out = allocator.buffer(capacity: 256)
        HTTP1Writer.writeResponseHead(status: 200, reason: "OK", minorVersion: 1, fields: fields, into: &out)
        return out
    }

    /// A call's successful answer the gateway gives itself (a batch member's share): the framed
    /// message in one chunk, then `grpc-status: 0` as the chunked body's trailer.
    static func render(message: [UInt8], requestID: String?, close: Bool, allocator: ByteBufferAllocator) -> ByteBuffer {
        var fields = [("content-type", "application/grpc"), ("transfer-encoding", "chunked")]
        if let requestID { fields.append(("x-request-id", requestID)) }
        if close { fields.append(("connection", "close")) }
        var out = allocator.buffer(capacity: 256 + message.count)
        HTTP1Writer.writeResponseHead(status: 200, reason: "OK", minorVersion: 1, fields: fields, into: &out)
        HTTP1Writer.writeChunkHeader(length: message.count, into: &out)
        out.writeBytes(message)
        out.writeStaticString("\r\n0\r\ngrpc-status: 0\r\n\r\n")
        return out
    }

    /// The `error.message` of the gateway's JSON error body.
    static func message(in json: String) -> String {
        guard let object = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any],
              let error = object["error"] as? [String: Any], let message = error["message"] as? String else { return json }
        return message
    }

    /// gRPC's `grpc-message` encoding: printable ASCII but `%` as is, everything else `%XX`.
    static func percentEncoded(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            if byte >= 0x20, byte <= 0x7E, byte != UInt8(ascii: "%") {
                out.unicodeScalars.append(UnicodeScalar(byte))
            } else {
                out += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        return out
    }
}

private extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
