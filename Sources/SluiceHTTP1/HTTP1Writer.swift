import NIOCore

/// Bytes of HTTP/1.1 framing the gateway writes itself.
public enum HTTP1Writer {
    /// A response head for an answer Sluice gives itself (errors, `100 Continue`).
    public static func writeResponseHead(
        status: Int, reason: String, minorVersion: Int, fields: [(String, String)],
        into out: inout ByteBuffer
    ) {
        out.writeStaticString(minorVersion == 0 ? "HTTP/1.0 " : "HTTP/1.1 ")
        out.writeString(String(status))
        out.writeInteger(HTTP1Bytes.space)
        out.writeString(reason)
        out.writeStaticString("\r\n")
        for (name, value) in fields {
            out.writeString(name)
            out.writeStaticString(": ")
            out.writeString(value)
            out.writeStaticString("\r\n")
        }
        out.writeStaticString("\r\n")
    }

    /// The size line that opens a chunk of `length` bytes. Inlinable: the gateway writes one per
    /// body part it re-chunks, from its own module.
    @inlinable
    public static func writeChunkHeader(length: Int, into out: inout ByteBuffer) {
        out.writeString(String(length, radix: 16))
        out.writeStaticString("\r\n")
    }

    public static let chunkEnd: StaticString = "\r\n"
    public static let lastChunk: StaticString = "0\r\n\r\n"
}
