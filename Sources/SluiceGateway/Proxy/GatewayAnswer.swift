import NIOCore
import NIOHTTP1
import SluiceHTTP1

/// The bytes of an answer the gateway gives itself: a JSON body with its head, in the client's
/// HTTP version, with the request ID and the rate-limit fields.
enum GatewayAnswer {
    /// The answer in the exchange's form: gRPC's for a gRPC call (`GRPCAnswer`), else JSON.
    static func render(
        for exchange: Exchange?, status: HTTPResponseStatus, body: String, grpcMessage: [UInt8]?, fields: [(String, String)], close: Bool,
        allocator: ByteBufferAllocator
    ) -> ByteBuffer {
        if let grpcMessage {
            return GRPCAnswer.render(message: grpcMessage, requestID: exchange?.requestID, close: close, allocator: allocator)
        }
        if exchange?.isGRPC == true {
            return GRPCAnswer.render(status: Int(status.code), jsonBody: body, requestID: exchange?.requestID, fields: fields, close: close, allocator: allocator)
        }
        return render(
            status: status, body: body, minorVersion: exchange?.requestMinorVersion ?? 1, requestID: exchange?.requestID, fields: fields, close: close,
            allocator: allocator)
    }

    static func render(
        status: HTTPResponseStatus, body: String, minorVersion: Int, requestID: String?, fields extra: [(String, String)],
        close: Bool, allocator: ByteBufferAllocator
    ) -> ByteBuffer {
        var fields = [("content-type", "application/json"), ("content-length", String(body.utf8.count))]
        if let requestID { fields.append(("x-request-id", requestID)) }
        fields += extra
        if close {
            fields.append(("connection", "close"))
        } else if minorVersion == 0 {
            fields.append(("connection", "keep-alive"))
        }
        var out = allocator.buffer(capacity: 256 + body.utf8.count)
        HTTP1Writer.writeResponseHead(status: Int(status.code), reason: status.reasonPhrase, minorVersion: minorVersion, fields: fields, into: &out)
        out.writeString(body)
        return out
    }
}
