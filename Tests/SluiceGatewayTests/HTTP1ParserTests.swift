import NIOCore
import Testing
@testable import SluiceGateway

/// What a parser run produced, flattened so runs over differently split input compare equal.
private struct Parsed: Equatable {
    var heads: [String] = []
    var bodies: [String] = []
    var ends = 0
    var error: HTTP1ParseError?
}

/// Feeds `input` to a parser in pieces of `pieceSize` bytes (everything at once when nil), or
/// cut at the byte offsets `cuts`, the way reads arrive, keeping unparsed bytes between pieces
/// as the handlers do.
private func parse(
    _ input: String, role: HTTP1Parser.Role = .request, pieceSize: Int? = nil, cuts: [Int] = [], framed: Bool = false,
    toHEAD: Bool = false, closeAtEnd: Bool = false, maxHead: Int = 16 * 1024
) -> Parsed {
    var parser = HTTP1Parser(role: role, maxHeadBytes: maxHead)
    parser.passChunkFraming = framed
    parser.requestWasHEAD = toHEAD
    var result = Parsed()
    var body = ""
    let bytes = Array(input.utf8)
    let size = pieceSize ?? max(bytes.count, 1)
    var unparsed = ByteBuffer()
    var offset = 0
    var cuts = cuts[...]
    repeat {
        let end = cuts.popFirst() ?? min(offset + size, bytes.count)
        let piece = bytes[offset..<end]
        offset += piece.count
        unparsed.writeBytes(piece)
        do {
            while let event = try parser.next(&unparsed) {
                switch event {
                case .head(let head):
                    let line = role == .request ? "\(head.string(head.method)) \(head.targetString)" : head.string(head.statusText)
                    result.heads.append("\(line) 1.\(head.minorVersion) fields=\(head.fields.count)")
                case .body(let buffer):
                    body += String(buffer: buffer)
                case .end:
                    result.bodies.append(body)
                    body = ""
                    result.ends += 1
                }
            }
        } catch {
            result.error = error
            return result
        }
    } while offset < bytes.count
    if closeAtEnd, parser.finishAtClose() != nil {
        result.bodies.append(body)
        result.ends += 1
    }
    return result
}

private func head(_ text: String, role: HTTP1Parser.Role = .request) throws -> HTTP1Head {
    var parser = HTTP1Parser(role: role, maxHeadBytes: 16 * 1024)
    var buffer = ByteBuffer(string: text)
    guard case .head(let head) = try parser.next(&buffer) else {
        Issue.record("no head in \(text.debugDescription)")
        throw HTTP1ParseError.malformed("test")
    }
    return head
}

@Suite struct HTTP1ParserTests {
    static let post = "POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\nX-Custom:  spaced value \t\r\n\r\nhello world"
    static let chunked = "POST /v1/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer-A: b\r\n\r\n"

    @Test func requestWithAContentLengthBody() throws {
        #expect(parse(Self.post) == Parsed(heads: ["POST /v1/chat/completions?x=1 1.1 fields=3"], bodies: ["hello world"], ends: 1))
        let parsed = try head(Self.post)
        #expect(parsed.contentLength == 11)
        #expect(parsed.keepAlive)
        #expect(parsed.hasHost)
        #expect(parsed.value(parsed.first("x-custom")!) == "spaced value")
    }

    @Test func everySplitOfTheInputGivesTheSameEvents() {
        let pipelined = Self.post + "GET /v1/models HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + Self.chunked
        let whole = parse(pipelined)
        #expect(whole.heads.count == 3)
        #expect(whole.bodies == ["hello world", "", "hello world"])
        for size in 1...17 {
            #expect(parse(pipelined, pieceSize: size) == whole, "pieces of \(size)")
        }
    }

    @Test func chunkFramingIsRemovedOrPassedThroughValidated() {
        #expect(parse(Self.chunked).bodies == ["hello world"])
        let body = String(Self.chunked[Self.chunked.range(of: "\r\n\r\n")!.upperBound...])
        for size in [1, 3, 1000] {
            #expect(parse(Self.chunked, pieceSize: size, framed: true).bodies == [body], "pieces of \(size)")
        }
    }

    @Test func framingFacts() throws {
        let http10 = try head("GET / HTTP/1.0\r\n\r\n")
        #expect(!http10.keepAlive && http10.minorVersion == 0 && !http10.hasHost)
        #expect(try head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keepAlive)
        #expect(!(try head("GET / HTTP/1.1\r\nConnection: upgrade, close\r\n\r\n").keepAlive))
        // Both framings: the coding wins and the connection ends after the exchange, as for
        // HTTP/1.0 with a coding (RFC 9112 §6.1).
        let both = try head("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: Chunked\r\n\r\n")
        #expect(both.isChunked && both.contentLength == nil && !both.keepAlive)
        #expect(!(try head("POST / HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n").keepAlive))
        #expect(!(try head("POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n").expectsContinue))
        #expect(try head("POST / HTTP/1.1\r\nContent-Length: 7, 7\r\nContent-Length: 7\r\n\r\n").contentLength == 7)
        #expect(try head("POST / HTTP/1.1\r\nExpect: 100-Continue\r\n\r\n").expectsContinue)
        #expect(try head("HEAD / HTTP/1.1\r\n\r\n").isHEAD)
        // Empty lines before a request line are ignored (RFC 9112 §2.2).
        #expect(parse("\r\n\r\nGET / HTTP/1.1\r\n\r\n").heads == ["GET / 1.1 fields=0"])
    }

    @Test func malformedRequestsAreRejected() {
        let cases: [(String, HTTP1ParseError)] = [
            ("GET / HTTP/1.1\nHost: a\r\n\r\n", .malformed("bare LF in the message head")),
            ("GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", .malformed("control character in a header value")),
            ("GET / HTTP/1.1\r\nHost : a\r\n\r\n", .malformed("invalid header field")),
            ("GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", .malformed("obsolete line folding in a header field")),
            ("GET / HTTP/1.1\r\nX: a\u{1}b\r\n\r\n", .malformed("control character in a header value")),
            ("GET / HTTP/2.0\r\n\r\n", .malformed("unsupported HTTP version")),
            ("GET  / HTTP/1.1\r\n\r\n", .malformed("invalid request target")),
            ("G(T / HTTP/1.1\r\n\r\n", .malformed("invalid request line")),
            ("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", .malformed("invalid content-length")),
            ("POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n", .malformed("invalid content-length")),
            ("POST / HTTP/1.1\r\nContent-Length: 1234567890123456789\r\n\r\n", .malformed("invalid content-length")),
            ("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: ,\r\n\r\n", .malformed("invalid content-length")),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1;" + String(repeating: "x", count: 2000) + "\r\n", .malformed("line too long in a chunked body")),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", .unsupportedTransferEncoding("gzip, chunked")),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", .unsupportedTransferEncoding("chunked, chunked")),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", .malformed("invalid chunk size")),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1000000000000000\r\n", .malformed("chunk size too large")),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n", .malformed("chunk data not followed by CRLF")),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\nab\r\n", .malformed("bare LF in a chunked body")),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nbad trailer\r\n\r\n", .malformed("invalid header field")),
        ]
        for (input, error) in cases {
            #expect(parse(input).error == error, "\(input.debugDescription)")
            #expect(parse(input, pieceSize: 1).error == error, "\(input.debugDescription) byte by byte")
        }
    }

    @Test func aHeadOverTheLimitIsTooLargeEvenWhenItNeverEnds() {
        let big = "GET / HTTP/1.1\r\nX: " + String(repeating: "a", count: 300) + "\r\n\r\n"
        #expect(parse(big, maxHead: 256).error == .headTooLarge)
        #expect(parse(String(big.dropLast(4)), pieceSize: 7, maxHead: 256).error == .headTooLarge)
        #expect(parse(big, maxHead: 1024).error == nil)
    }

    @Test func responseBodiesAreDelimitedAsRFC9112Says() {
        let length = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        #expect(parse(length, role: .response) == Parsed(heads: ["200 OK 1.1 fields=1"], bodies: ["ok"], ends: 1))
        // A response to HEAD, a 204 and a 304 have no body, whatever their fields say.
        #expect(parse("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", role: .response, toHEAD: true).ends == 1)
        #expect(parse("HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n", role: .response).ends == 2)
        // Interim responses are dropped; a status line may lack a reason phrase.
        #expect(parse("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", role: .response).heads == ["200 1.1 fields=1"])
        // Neither length nor chunking (or a coding that is not chunked): the body runs until close.
        let untilClose = parse("HTTP/1.0 200 OK\r\n\r\nall of it", role: .response, pieceSize: 4, closeAtEnd: true)
        #expect(untilClose == Parsed(heads: ["200 OK 1.0 fields=0"], bodies: ["all of it"], ends: 1))
        #expect(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzz", role: .response, closeAtEnd: true).bodies == ["zz"])
        let sse = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7\r\ndata: 1\r\n7\r\ndata: 2\r\n0\r\n\r\n"
        #expect(parse(sse, role: .response, pieceSize: 5).bodies == ["data: 1data: 2"])
        #expect(parse(sse, role: .response, pieceSize: 5, framed: true).bodies == ["7\r\ndata: 1\r\n7\r\ndata: 2\r\n0\r\n\r\n"])
        #expect(parse("HTTP/1.1 2x0 OK\r\n\r\n", role: .response).error == .malformed("invalid status code"))
        #expect(parse("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", role: .response).error == .malformed("invalid content-length"))
    }

    /// What a replica's connection may carry, one response after another: an interim 100, a
    /// length, no body (204, and 304 whatever its length says), chunks with an extension, a
    /// chunk ending in LF and a trailer, and a body that runs until the connection closes.
    static let responses = "HTTP/1.1 100 Continue\r\n\r\n"
        + "HTTP/1.1 200 OK\r\nContent-Length: 11\r\nX-A:  spaced \t\r\n\r\nhello world"
        + "HTTP/1.1 204 No Content\r\n\r\n"
        + "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        + "7;ext=1\r\ndata: 1\r\n9\r\ndata: 22\n\r\n0\r\nTrailer-A: b\r\n\r\n"
        + "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n"
        + "HTTP/1.0 200 OK\r\n\r\nuntil the close"

    @Test func everySplitOfAResponseStreamGivesTheSameEvents() {
        let whole = parse(Self.responses, role: .response, closeAtEnd: true)
        #expect(whole == Parsed(
            heads: ["200 OK 1.1 fields=2", "204 No Content 1.1 fields=0", "200 OK 1.1 fields=2", "304 Not Modified 1.1 fields=1", "200 OK 1.0 fields=0"],
            bodies: ["hello world", "", "data: 1data: 22\n", "", "until the close"], ends: 5))
        let framed = parse(Self.responses, role: .response, framed: true, closeAtEnd: true)
        #expect(framed.bodies.count == 5 && framed.bodies[2] == "7;ext=1\r\ndata: 1\r\n9\r\ndata: 22\n\r\n0\r\nTrailer-A: b\r\n\r\n")
        let count = Self.responses.utf8.count
        for cut in 1..<count {
            #expect(parse(Self.responses, role: .response, cuts: [cut], closeAtEnd: true) == whole, "split at \(cut)")
            #expect(parse(Self.responses, role: .response, cuts: [cut], framed: true, closeAtEnd: true) == framed, "framed, split at \(cut)")
        }
        for size in 1...17 {
            #expect(parse(Self.responses, role: .response, pieceSize: size, closeAtEnd: true) == whole, "pieces of \(size)")
            #expect(parse(Self.responses, role: .response, pieceSize: size, framed: true, closeAtEnd: true) == framed, "framed, pieces of \(size)")
        }
    }
}

@Suite struct HeaderRewriterTests {
    private func upstream(_ text: String, client: String? = "10.0.0.9") throws -> (String, String) {
        var random = FastRandom()
        let (out, id) = HeaderRewriter.upstreamRequest(
            try head(text), host: "replica:8000", clientAddress: client, random: &random, allocator: ByteBufferAllocator())
        return (String(buffer: out), id)
    }

    @Test func theUpstreamRequestDropsHopByHopFieldsAndAddsIdentity() throws {
        let (text, id) = try upstream(
            "POST /v1/x?y HTTP/1.0\r\nConnection: keep-alive, X-Secret, Content-Length\r\nKeep-Alive: 5\r\nX-Secret: s\r\n"
                + "Content-Length: 2\r\nTE: trailers\r\nUpgrade: h2c\r\nExpect: 100-continue\r\nX-Forwarded-For: 1.2.3.4\r\n"
                + "X-Forwarded-Proto: https\r\nAccept: */*\r\n\r\n")
        let lines = text.components(separatedBy: "\r\n")
        #expect(lines[0] == "POST /v1/x?y HTTP/1.1")
        #expect(lines.contains("content-length: 2"))  // named in Connection, but it frames the body
        #expect(lines.contains("Accept: */*"))
        #expect(lines.contains("x-forwarded-for: 1.2.3.4, 10.0.0.9"))
        #expect(lines.contains("x-forwarded-proto: http"))
        #expect(lines.contains("x-request-id: \(id)"))
        #expect(lines.contains("host: replica:8000"))
        #expect(id.utf8.count == 32)
        #expect(lines.contains { $0.hasPrefix("traceparent: 00-\(id)-") })
        for gone in ["Connection", "Keep-Alive", "X-Secret", "TE", "Upgrade", "Expect", "X-Forwarded-Proto: https", "Content-Length"] {
            #expect(!lines.contains { $0.hasPrefix(gone) }, "\(gone) must not be forwarded")
        }
        #expect(text.hasSuffix("\r\n\r\n"))
    }

    @Test func validIdentityIsKeptAndChunkingIsCanonical() throws {
        let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        let (text, id) = try upstream(
            "POST / HTTP/1.1\r\nHost: h\r\nX-Request-Id: abc\r\ntraceparent: \(traceparent)\r\n"
                + "Content-Length: 9\r\nTransfer-Encoding:  CHUNKED \r\n\r\n", client: nil)
        #expect(id == "abc")
        let lines = text.components(separatedBy: "\r\n")
        #expect(lines.contains("X-Request-Id: abc") && lines.contains("traceparent: \(traceparent)") && lines.contains("Host: h"))
        #expect(lines.contains("transfer-encoding: chunked"))
        #expect(!lines.contains { $0.lowercased().hasPrefix("content-length") || $0.contains("CHUNKED") || $0.hasPrefix("x-forwarded-for") })
        // An invalid traceparent is replaced.
        let (replaced, _) = try upstream("GET / HTTP/1.1\r\ntraceparent: 00-zz\r\n\r\n")
        #expect(!replaced.contains("00-zz"))
        #expect(HeaderRewriter.isValidTraceparent(String(replaced.components(separatedBy: "traceparent: ")[1].prefix(55))))
    }

    @Test func framingGoesUpstreamInOneCanonicalForm() throws {
        let (list, _) = try upstream("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 05, 5\r\n\r\n")
        let lines = list.components(separatedBy: "\r\n")
        #expect(lines.filter { $0.lowercased().hasPrefix("content-length") } == ["content-length: 5"])
    }

    @Test func theDownstreamResponseSpeaksTheClientsVersion() throws {
        func downstream(_ text: String, minor: Int, keepAlive: Bool, reframing: HeaderRewriter.BodyReframing = .none) throws -> [String] {
            let out = HeaderRewriter.downstreamResponse(
                try head(text, role: .response), clientMinorVersion: minor, requestID: "rid", keepAlive: keepAlive,
                reframing: reframing, allocator: ByteBufferAllocator())
            return String(buffer: out).components(separatedBy: "\r\n")
        }
        let chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nX-A: 1\r\n\r\n"
        #expect(try downstream(chunked, minor: 1, keepAlive: true) == ["HTTP/1.1 200 OK", "Transfer-Encoding: chunked", "X-A: 1", "x-request-id: rid", "", ""])
        #expect(try downstream(chunked, minor: 0, keepAlive: false, reframing: .unchunk) == ["HTTP/1.0 200 OK", "X-A: 1", "x-request-id: rid", "connection: close", "", ""])
        let untilClose = "HTTP/1.0 201 Created\r\nx-request-id: up\r\n\r\n"
        #expect(try downstream(untilClose, minor: 1, keepAlive: true, reframing: .chunk) == ["HTTP/1.1 201 Created", "x-request-id: up", "transfer-encoding: chunked", "", ""])
        #expect(try downstream("HTTP/1.1 204 No Content\r\n\r\n", minor: 0, keepAlive: true) == ["HTTP/1.0 204 No Content", "x-request-id: rid", "connection: keep-alive", "", ""])
        // A Content-Length beside a transfer coding (or under re-framing) never reaches the client.
        let both = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\nTransfer-Encoding: chunked\r\n\r\n"
        #expect(try downstream(both, minor: 1, keepAlive: true) == ["HTTP/1.1 200 OK", "Transfer-Encoding: chunked", "x-request-id: rid", "", ""])
        #expect(try downstream(both, minor: 0, keepAlive: false, reframing: .unchunk) == ["HTTP/1.0 200 OK", "x-request-id: rid", "connection: close", "", ""])
        #expect(try downstream("HTTP/1.1 200 OK\r\nContent-Length: 007\r\n\r\n", minor: 1, keepAlive: true) == ["HTTP/1.1 200 OK", "content-length: 7", "x-request-id: rid", "", ""])
    }
}

@Suite struct WorkerAffinityTests {
    @Test func allowedCPUsAreReadFromTheStatusList() {
        #expect(WorkerAffinity.allowedCPUs(status: "Name:\tsluice\nCpus_allowed_list:\t0-2,5,7-8\n") == [0, 1, 2, 5, 7, 8])
        #expect(WorkerAffinity.allowedCPUs(status: "Cpus_allowed_list:\t3\n") == [3])
        #expect(WorkerAffinity.allowedCPUs(status: "Cpus_allowed_list:\t4-2\n").isEmpty)
        #expect(WorkerAffinity.allowedCPUs(status: "Name:\tx\n").isEmpty)
        // On this (Linux) machine the real list is not empty and pinned groups start.
        let cpus = WorkerAffinity.allowedCPUs()
        #expect(!cpus.isEmpty)
        let (group, pinned) = WorkerAffinity.makeGroup(workers: 2, pinned: true)
        #expect(pinned == [cpus[0], cpus[1 % cpus.count]])
        #expect(throws: Never.self) { try group.syncShutdownGracefully() }
    }
}
