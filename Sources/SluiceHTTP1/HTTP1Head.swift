import NIOCore

/// A parsed HTTP/1.x message head: the bytes as received and where each piece lies in them.
///
/// The data path never turns a head into a dictionary of strings: the proxy only needs a few
/// facts (framing, keep-alive, the path) and to copy most fields through unchanged, so fields
/// stay byte ranges into `bytes` and are compared or copied as bytes.
public struct HTTP1Head: Sendable {
    /// Byte ranges of one field line's name and value (value without surrounding whitespace).
    public struct Field: Sendable {
        public var name: Range<Int>
        public var value: Range<Int>
    }

    /// The head from the start line through the final empty line; ranges index it from 0.
    public var bytes: ByteBuffer
    public var fields: [Field] = []
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    public var minorVersion = 1
    /// Requests: the method and the request target.
    public var method: Range<Int> = 0..<0
    public var target: Range<Int> = 0..<0
    /// Responses: the status code, and the status code through the end of the reason phrase.
    public var status = 0
    public var statusText: Range<Int> = 0..<0

    /// The message's `Content-Length`, when it has one that frames it (never with chunking).
    public var contentLength: Int?
    /// The body is chunked (the final transfer coding is `chunked`).
    public var isChunked = false
    public var hasTransferEncoding = false
    public var connectionClose = false
    public var connectionKeepAlive = false
    /// `Connection` names other fields (which are then hop-by-hop too).
    public var connectionNamesOthers = false
    public var hasHost = false
    /// `Expect: 100-continue`.
    public var expectsContinue = false
    /// `Content-Type: application/grpc*`: a gRPC call (or its answer).
    public var isGRPC = false

    public init(bytes: ByteBuffer) {
        self.bytes = bytes
    }

    /// Whether the sender wants the connection kept after this message.
    @inlinable
    public var keepAlive: Bool {
        minorVersion >= 1 ? !connectionClose : (connectionKeepAlive && !connectionClose)
    }

    public var isHEAD: Bool {
        bytes.withUnsafeReadableBytes { HTTP1Bytes.equals($0[method], "HEAD") }
    }

    public func string(_ range: Range<Int>) -> String {
        bytes.getString(at: bytes.readerIndex + range.lowerBound, length: range.count) ?? ""
    }

    /// The request target as a string.
    public var targetString: String { string(target) }

    /// The first field named `lowercaseName` (matched ignoring ASCII case).
    public func first(_ lowercaseName: StaticString) -> Field? {
        fields.first { nameEquals($0, lowercaseName) }
    }

    public func value(_ field: Field) -> String { string(field.value) }

    /// `Content-Type: text/event-stream` (server-sent events), parameters aside.
    public var isEventStream: Bool {
        guard let field = first("content-type") else { return false }
        return value(field).lowercased().hasPrefix("text/event-stream")
    }

    public func nameEquals(_ field: Field, _ lowercaseName: StaticString) -> Bool {
        bytes.withUnsafeReadableBytes { HTTP1Bytes.equalsLowercase($0[field.name], lowercaseName) }
    }
}

extension HTTP1Head {
    /// A copy whose bytes are its own, so holding it (while its request waits for admission, a
    /// queue or a batch) does not pin the read buffer it was parsed from.
    public func detached(_ allocator: ByteBufferAllocator) -> HTTP1Head {
        var copy = self
        copy.bytes = allocator.buffer(buffer: bytes)
        return copy
    }
}

extension HTTP1Head {
    /// The method is idempotent (RFC 9110 §9.2.2: GET, HEAD, OPTIONS, TRACE, PUT, DELETE): a
    /// request with it may be sent again after a replica may have read it.
    public var isIdempotentMethod: Bool {
        bytes.withUnsafeReadableBytes { bytes in
            let method = bytes[method]
            return HTTP1Bytes.equals(method, "GET") || HTTP1Bytes.equals(method, "HEAD") || HTTP1Bytes.equals(method, "OPTIONS")
                || HTTP1Bytes.equals(method, "TRACE") || HTTP1Bytes.equals(method, "PUT") || HTTP1Bytes.equals(method, "DELETE")
        }
    }
}
