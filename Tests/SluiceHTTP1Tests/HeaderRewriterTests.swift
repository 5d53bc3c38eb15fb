import Foundation
import NIOCore
import Testing
@testable import SluiceHTTP1

@Suite struct HeaderRewriterTests {
    private func upstream(_ text: String, client: String? = "10.0.0.9") throws -> (String, String) {
        var random = FastRandom()
        let (out, id) = HeaderRewriter.upstreamRequest(
            try head(text), host: "replica:8000", clientAddress: client, random: &random, allocator: ByteBufferAllocator())
        return (String(buffer: out), id)
    }

    @Test func aProvidersRequestCarriesItsKeyAndHostNeverTheClients() throws {
        var random = FastRandom()
        let text = "POST /v1/chat/completions HTTP/1.1\r\nHost: gateway.local\r\nAuthorization: Bearer sk-client\r\nX-Custom: kept\r\nContent-Length: 2\r\n\r\n"
        let (out, _) = HeaderRewriter.upstreamRequest(
            try head(text), host: "127.0.0.1:443", clientAddress: nil, random: &random, allocator: ByteBufferAllocator(),
            provider: (host: "api.example.com", authorization: "Bearer sk-provider"))
        let written = String(buffer: out).lowercased()
        #expect(!written.contains("sk-client") && !written.contains("gateway.local"))
        #expect(written.contains("host: api.example.com\r\n") && written.contains("authorization: bearer sk-provider\r\n"))
        #expect(written.contains("x-custom: kept\r\n"))
        // Without a provider both pass, unless `Connection` names the authorization.
        let (plain, _) = try upstream(text)
        #expect(plain.contains("Authorization: Bearer sk-client\r\n") && plain.contains("Host: gateway.local\r\n"))
        let (named, _) = try upstream(text.replacingOccurrences(of: "X-Custom: kept", with: "Connection: authorization"))
        #expect(!named.contains("sk-client"))
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
