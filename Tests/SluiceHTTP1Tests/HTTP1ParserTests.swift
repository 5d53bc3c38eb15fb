import Foundation
import NIOCore
import Testing
@testable import SluiceHTTP1

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

    @Test func aGRPCContentTypeIsNotedInTheHead() throws {
        func grpc(_ type: String) throws -> Bool {
            try head("POST /x HTTP/1.1\r\nhost: a\r\ncontent-type: \(type)\r\ncontent-length: 0\r\n\r\n").isGRPC
        }
        #expect(try grpc("application/grpc"))
        #expect(try grpc("Application/GRPC+proto"))
        #expect(try grpc("application/grpc; charset=utf-8"))
        #expect(try !grpc("application/grpcx"))
        #expect(try !grpc("application/json"))
        #expect(try !head("GET / HTTP/1.1\r\nhost: a\r\n\r\n").isGRPC)
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

    /// Found by the split property: a read ending in the CR of an empty line before a request
    /// line was taken for a head of its own.
    @Test func anEmptyLineCutBetweenItsCRAndLFIsStillIgnored() {
        let input = "GET /a HTTP/1.1\r\n\r\n\r\nGET /b HTTP/1.1\r\n\r\n"
        let whole = parse(input)
        #expect(whole.heads == ["GET /a 1.1 fields=0", "GET /b 1.1 fields=0"])
        #expect(parse(input, cuts: ["GET /a HTTP/1.1\r\n\r\n\r".utf8.count]) == whole)
        #expect(parse("\rGET / HTTP/1.1\r\n\r\n", cuts: [1]).error == .malformed("invalid request line"))
    }

    /// Found by the rewriter property: `chunked, chunked` was accepted from a replica and sent
    /// on to the client, which would de-chunk twice.
    @Test func aResponseAppliesChunkedOnceAndLast() {
        for fields in ["Transfer-Encoding: chunked, chunked", "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked", "Transfer-Encoding: chunked, gzip"] {
            let input = "HTTP/1.1 200 OK\r\n\(fields)\r\n\r\n0\r\n\r\n"
            #expect(parse(input, role: .response).error == .malformed("chunked before another transfer coding"), "\(fields)")
        }
        #expect(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", role: .response).ends == 1)
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
