import NIOCore

/// An incremental HTTP/1.x message parser for one connection direction (requests from a client,
/// or responses from a replica), strict where leniency lets two parsers disagree.
///
/// It replaces NIO's llhttp decoder on the data path. Body bytes come out as slices of the
/// buffers read from the socket (never copied). With `passChunkFraming` set, a chunked body comes
/// out with its framing, validated but unchanged, so a proxy forwards it in one write per read
/// instead of re-framing every chunk; otherwise only the chunk data comes out.
///
/// Strictness (RFC 9112): lines end in CRLF (a bare LF is an error); no whitespace before a
/// field's colon and no obsolete line folding; no control characters in values;
/// `Content-Length` must be digits and agree with any other `Content-Length`; in a request,
/// `Transfer-Encoding` must be exactly `chunked` (it then wins over `Content-Length`, which the
/// caller must not forward). Chunk sizes are hex (at most 15 digits); chunk extensions are
/// allowed but may not hold control characters.
///
/// Heads are parsed in `HTTP1Parser+Head.swift`, chunked bodies in `HTTP1Parser+Chunked.swift`.
public struct HTTP1Parser: Sendable {
    public enum Role: Sendable {
        case request
        case response
    }

    public enum Event: Sendable {
        case head(HTTP1Head)
        /// Body bytes: data, or data with its chunk framing when `passChunkFraming` is set.
        case body(ByteBuffer)
        case end
    }

    @usableFromInline
    enum State: Sendable {
        case head
        case fixed(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkDataEnd
        case trailers
        case untilClose
        case endPending
    }

    public let role: Role
    public let maxHeadBytes: Int
    /// See the type's doc comment. Read when body bytes are parsed, so it may be set in answer
    /// to the head event.
    public var passChunkFraming = false
    /// Responses: the request was `HEAD`, so the response has no body whatever it says.
    public var requestWasHEAD = false
    /// Keep a chunked body's trailer fields (validated lines, `name: value`) in `trailers`
    /// (otherwise they are checked and dropped, unless passed with the framing). HTTP/2 and
    /// gRPC carry them on: a gRPC call's status is a trailer.
    public var keepsTrailers = false
    /// The trailer lines of the message just parsed, when `keepsTrailers`; the caller empties it.
    public var trailers: [ByteBuffer] = []
    @usableFromInline var state = State.head
    /// How far the current head (or chunk-size / trailer line) has been searched for a line end,
    /// and where its unfinished line starts: bytes arriving in many small reads are searched
    /// once, never again from the start of a line.
    var scanned = 0
    var lineStart = 0
    /// Bytes of the current message's trailer section so far (bounded like a head).
    var trailerBytes = 0
    @usableFromInline var dataBytes = 0

    public init(role: Role, maxHeadBytes: Int) {
        self.role = role
        self.maxHeadBytes = maxHeadBytes
    }

    /// Data bytes of the current message's body so far (framing not counted).
    @inlinable public var bodyBytes: Int { dataBytes }

    /// Between messages: the last message ended and no byte of the next one was parsed.
    public var isAtMessageStart: Bool {
        if case .head = state { return scanned == 0 }
        return false
    }

    /// A chunked body was parsed up to the end of a chunk, and no byte of the next size line
    /// taken: what was passed on so far ends on a chunk boundary.
    public var isBetweenChunks: Bool {
        if case .chunkSize = state { return true }
        return false
    }

    /// The body runs until the connection closes.
    public var readsUntilClose: Bool {
        if case .untilClose = state { return true }
        return false
    }

    /// The next event from `buffer` (whose parsed bytes are consumed), or nil when more bytes
    /// are needed.
    // Inlinable because the gateway calls it from another module on every read: a body slice (the
    // common event) is then cut in the caller with no call; heads and chunk framing stay one call.
    @inlinable
    public mutating func next(_ buffer: inout ByteBuffer) throws(HTTP1ParseError) -> Event? {
        switch state {
        case .head:
            return try nextHead(&buffer)
        case .endPending:
            state = .head
            return .end
        case .fixed(let remaining):
            guard buffer.readableBytes > 0 else { return nil }
            let count = min(remaining, buffer.readableBytes)
            let slice = buffer.readSlice(length: count)!
            dataBytes += count
            state = count == remaining ? .endPending : .fixed(remaining: remaining - count)
            return .body(slice)
        case .untilClose:
            guard buffer.readableBytes > 0 else { return nil }
            dataBytes += buffer.readableBytes
            return .body(buffer.readSlice(length: buffer.readableBytes)!)
        case .chunkSize, .chunkData, .chunkDataEnd, .trailers:
            return passChunkFraming ? try nextFramedChunks(&buffer) : try nextChunkData(&buffer)
        }
    }

    /// At end of input: the end of a body that runs until close, else nil.
    public mutating func finishAtClose() -> Event? {
        guard case .untilClose = state else { return nil }
        state = .head
        return .end
    }

    /// The next head, skipping interim responses (100, 103): Sluice answers `Expect` itself.
    @usableFromInline
    mutating func nextHead(_ buffer: inout ByteBuffer) throws(HTTP1ParseError) -> Event? {
        while true {
            guard let head = try parseHead(&buffer) else { return nil }
            if role == .response, head.status < 200, head.status != 101 {
                state = .head
                continue
            }
            return .head(head)
        }
    }
}
