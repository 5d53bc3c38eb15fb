import NIOCore
import NIOHPACK
import SluiceHTTP1

/// An HTTP/2 request's header block as the HTTP/1.1 head the data path parses: one data path
/// for both protocols (HAProxy's HTX idea, with HTTP/1.1 text as the common form), so every
/// feature and every strictness rule of `HTTP1Parser` applies to HTTP/2 streams unchanged.
///
/// NIO has already refused what RFC 9113 calls malformed (missing or repeated pseudo-fields,
/// uppercase names, connection-specific fields, CR/LF/NUL in values, a body longer or shorter
/// than `content-length`); the HTTP/1.1 parser then sees only fields it would accept from a
/// client, and checks the request line again.
enum HTTP2RequestHead {
    struct Encoded {
        var bytes: ByteBuffer
        /// The body is sent chunked (no `content-length`, and more than the header block).
        var chunked: Bool
        var isHEAD: Bool
    }

    /// `:authority` becomes `host` (over any `host` field), split `cookie` fields are joined
    /// (RFC 9113 §8.2.3), `te` is dropped. A body without `content-length` is framed chunked;
    /// a request that ends with its header block gets `content-length: 0` unless it is a GET
    /// or HEAD, as HTTP/1.1 clients send it.
    static func encode(_ headers: HPACKHeaders, endStream: Bool, allocator: ByteBufferAllocator) -> Encoded? {
        var method: String?
        var path: String?
        var authority: String?
        var hasLength = false
        var cookies: [String] = []
        var out = allocator.buffer(capacity: 256)
        // Fields first into `fields`, as the request line needs the pseudo-fields, which come first
        // but in any order.
        var fields = allocator.buffer(capacity: 256)
        for (name, value, _) in headers {
            if name.utf8.first == UInt8(ascii: ":") {
                switch name {
                case ":method": method = value
                case ":path": path = value
                case ":authority": authority = value
                default: break
                }
                continue
            }
            switch name {
            // (Pseudo-fields come first: NIO refuses a block where they do not.)
            case "host" where authority != nil: continue
            case "te": continue
            case "cookie":
                cookies.append(value)
                continue
            case "content-length": hasLength = true
            default: break
            }
            fields.writeString(name)
            fields.writeStaticString(": ")
            fields.writeString(value)
            fields.writeStaticString("\r\n")
        }
        guard let method, let path else { return nil }
        out.writeString(method)
        out.writeInteger(UInt8(ascii: " "))
        out.writeString(path)
        out.writeStaticString(" HTTP/1.1\r\n")
        if let authority {
            out.writeStaticString("host: ")
            out.writeString(authority)
            out.writeStaticString("\r\n")
        }
        out.writeBuffer(&fields)
        if !cookies.isEmpty {
            out.writeStaticString("cookie: ")
            out.writeString(cookies.joined(separator: "; "))
            out.writeStaticString("\r\n")
        }
        let isHEAD = method == "HEAD"
        var chunked = false
        if !hasLength {
            if !endStream {
                chunked = true
                out.writeStaticString("transfer-encoding: chunked\r\n")
            } else if method != "GET", !isHEAD {
                out.writeStaticString("content-length: 0\r\n")
            }
        }
        out.writeStaticString("\r\n")
        return Encoded(bytes: out, chunked: chunked, isHEAD: isHEAD)
    }

    /// A data frame's bytes as one chunk (none when empty), and the last chunk when `last`.
    static func chunk(_ data: ByteBuffer, last: Bool, allocator: ByteBufferAllocator) -> ByteBuffer {
        var out = allocator.buffer(capacity: data.readableBytes + 24)
        if data.readableBytes > 0 {
            HTTP1Writer.writeChunkHeader(length: data.readableBytes, into: &out)
            out.writeImmutableBuffer(data)
            out.writeStaticString(HTTP1Writer.chunkEnd)
        }
        if last { out.writeStaticString(HTTP1Writer.lastChunk) }
        return out
    }

    /// A chunked request's trailer section: HTTP/2 trailers as HTTP/1.1's, after the last chunk.
    static func lastChunk(trailers: HPACKHeaders?, allocator: ByteBufferAllocator) -> ByteBuffer {
        var out = allocator.buffer(capacity: 5)
        out.writeStaticString("0\r\n")
        for (name, value, _) in trailers ?? [:] where name.utf8.first != UInt8(ascii: ":") {
            out.writeString(name)
            out.writeStaticString(": ")
            out.writeString(value)
            out.writeStaticString("\r\n")
        }
        out.writeStaticString("\r\n")
        return out
    }
}
