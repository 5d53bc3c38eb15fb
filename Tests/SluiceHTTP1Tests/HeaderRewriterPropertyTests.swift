import Foundation
import NIOCore
import Testing
import SluiceHTTP1

/// Whatever head the parser accepts, what the rewriter sends on frames the body exactly as the
/// parser read it, with one framing field at most and no hop-by-hop field: a next hop cannot
/// read a different message boundary from it (request smuggling) or see connection options
/// meant for the gateway.
@Suite struct HeaderRewriterPropertyTests {
    static let hopByHop: Set<String> = [
        "connection", "keep-alive", "te", "upgrade", "trailer", "proxy-connection", "proxy-authenticate", "proxy-authorization",
    ]

    /// A head with random fields and a random mix of the fields the rewriter treats specially:
    /// hop-by-hop ones, `Connection` naming fields present in the head (and framing ones),
    /// repeated or listed lengths, chunking beside a length, identity fields.
    static func hostileHead(_ generator: inout MessageGenerator, request: Bool) -> [UInt8] {
        var fields = (0..<generator.int(0...6)).map { _ in generator.randomField() }
        let length = String(generator.int(0...99))
        var extras: [(String, String)] = []
        for _ in 0..<generator.int(0...8) {
            let named = fields.isEmpty ? "x-gone" : String(decoding: generator.pick(fields).name, as: UTF8.self)
            extras.append(generator.pick([
                ("Connection", generator.pick(["close", "keep-alive", "upgrade", "\(named), close", "content-length", "Transfer-Encoding, \(named)", "host"])),
                ("Keep-Alive", "timeout=5"), ("TE", "trailers"), ("Upgrade", "h2c"), ("Trailer", "x-t"),
                ("Proxy-Connection", "keep-alive"), ("Proxy-Authenticate", "Basic"), ("Proxy-Authorization", "Basic eA=="),
                ("Content-Length", length), ("Content-Length", "\(length), \(length)"), ("Content-Length", "00\(length)"),
                ("Transfer-Encoding", generator.pick(["chunked", " Chunked ", "gzip, chunked", "gzip"])),
                ("Expect", "100-continue"), ("X-Forwarded-For", "192.0.2.1"), ("X-Forwarded-Proto", "https"),
                ("X-Request-Id", "client-id"), ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            ]))
        }
        fields += extras.map { (generator.anyCase($0.0.lowercased()), Array($0.1.utf8)) }
        fields.shuffle(using: &generator.random)
        var head = Array((request ? "POST /v1/x HTTP/1.\(generator.chance(80) ? 1 : 0)" : "HTTP/1.1 200 OK").utf8) + [0x0D, 0x0A]
        for field in fields { head += field.name + Array(": ".utf8) + field.value + [0x0D, 0x0A] }
        return head + [0x0D, 0x0A]
    }

    /// The parsed head of `bytes`, or nil when the parser refuses it.
    static func parseHead(_ bytes: [UInt8], role: HTTP1Parser.Role) -> (HTTP1Head, untilClose: Bool)? {
        var parser = HTTP1Parser(role: role, maxHeadBytes: 16 * 1024)
        var buffer = ByteBuffer(bytes: bytes)
        guard case .head(let head)? = try? parser.next(&buffer) else { return nil }
        return (head, parser.readsUntilClose)
    }

    static func names(_ head: HTTP1Head) -> [String] {
        head.fields.map { head.string($0.name).lowercased() }
    }

    /// Names the head's `Connection` fields list, besides the framing and `Host` that the
    /// rewriter keeps.
    static func connectionOptions(_ head: HTTP1Head) -> Set<String> {
        let values = head.fields.filter { head.string($0.name).lowercased() == "connection" }.map { head.value($0) }
        let options = values.flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        return Set(options).subtracting(["content-length", "transfer-encoding", "host", "close", "keep-alive"])
    }

    @Test func anAcceptedRequestGoesUpstreamFramedTheSameWayWithoutHopByHopFields() throws {
        var generator = MessageGenerator(seed: 0x5EED_0004)
        var random = FastRandom()
        var accepted = 0
        for iteration in 0..<2000 {
            let bytes = Self.hostileHead(&generator, request: true)
            guard let (head, _) = Self.parseHead(bytes, role: .request) else { continue }
            accepted += 1
            let (out, _) = HeaderRewriter.upstreamRequest(
                head, host: "replica:8000", clientAddress: "10.0.0.9", random: &random, allocator: ByteBufferAllocator())
            let text = String(decoding: out.readableBytesView, as: UTF8.self)
            let sent = try #require(Self.parseHead(Array(out.readableBytesView), role: .request), "iteration \(iteration): \(text)")
            let names = Self.names(sent.0)
            #expect(names.filter { $0 == "content-length" }.count + names.filter { $0 == "transfer-encoding" }.count <= 1, "iteration \(iteration): \(text)")
            #expect(sent.0.isChunked == head.isChunked && sent.0.contentLength == head.contentLength, "iteration \(iteration): \(text)")
            #expect(Self.hopByHop.isDisjoint(with: names) && !names.contains("expect"), "iteration \(iteration): \(text)")
            #expect(Self.connectionOptions(head).isDisjoint(with: names), "iteration \(iteration): \(text)")
            for identity in ["x-forwarded-proto", "x-forwarded-for", "x-request-id", "traceparent", "host"] {
                #expect(names.filter { $0 == identity }.count == 1, "iteration \(iteration), \(identity): \(text)")
            }
        }
        #expect(accepted > 500)
    }

    /// Response heads, with the framing the gateway chooses for each (as in
    /// `ProxyServerHandler.upstreamReceivedHead`): the client reads the body's end where the
    /// gateway will write it.
    @Test func anAcceptedResponseGoesDownstreamFramedAsTheGatewayWritesIt() throws {
        var generator = MessageGenerator(seed: 0x5EED_0005)
        var accepted = 0
        for iteration in 0..<2000 {
            let bytes = Self.hostileHead(&generator, request: false)
            guard let (head, untilClose) = Self.parseHead(bytes, role: .response) else { continue }
            accepted += 1
            let clientMinor = generator.chance(70) ? 1 : 0
            let reframing: HeaderRewriter.BodyReframing =
                clientMinor == 0 ? (head.isChunked && !untilClose ? .unchunk : .none)
                : untilClose ? .chunk : (head.isChunked && generator.chance(50) ? .rechunk : .none)
            let out = HeaderRewriter.downstreamResponse(
                head, clientMinorVersion: clientMinor, requestID: "rid", keepAlive: generator.chance(50),
                reframing: reframing, allocator: ByteBufferAllocator())
            let text = String(decoding: out.readableBytesView, as: UTF8.self)
            let (sent, sentUntilClose) = try #require(Self.parseHead(Array(out.readableBytesView), role: .response), "iteration \(iteration): \(text)")
            let names = Self.names(sent)
            #expect(names.filter { $0 == "content-length" }.count <= 1, "iteration \(iteration): \(text)")
            #expect(!(names.contains("content-length") && names.contains("transfer-encoding")), "iteration \(iteration): \(text)")
            #expect(Self.hopByHop.subtracting(["connection"]).isDisjoint(with: names), "iteration \(iteration): \(text)")
            // (The replica's own request IDs pass through; one is added when it sent none.)
            #expect(names.filter { $0 == "connection" }.count <= 1 && names.contains("x-request-id"), "iteration \(iteration): \(text)")
            #expect(Self.connectionOptions(head).isDisjoint(with: names), "iteration \(iteration): \(text)")
            // Chunked once at most, as the last coding: a client that honours every coding it is
            // told of must not read a different end than the gateway's parser did.
            let codings = sent.fields.filter { sent.string($0.name).lowercased() == "transfer-encoding" }
                .flatMap { sent.value($0).split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            #expect(codings.filter { $0 == "chunked" }.count <= 1, "iteration \(iteration): \(text)")
            if clientMinor == 1 {
                // An HTTP/1.1 client never has to wait for the close to find the end.
                #expect(sent.isChunked == (reframing.writesChunks || head.isChunked), "iteration \(iteration): \(text)")
                #expect(!sentUntilClose, "iteration \(iteration): \(text)")
            } else {
                #expect(!sent.isChunked, "iteration \(iteration): \(text)")
            }
            if !sent.isChunked, !sentUntilClose {
                #expect(sent.contentLength == head.contentLength, "iteration \(iteration): \(text)")
            }
        }
        #expect(accepted > 500)
    }
}

