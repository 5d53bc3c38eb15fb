import Foundation
import NIOCore
import NIOPosix
import NIOHTTP1
import SluiceConfig
import SluiceCore
import SluiceReplica
import SluiceTesting
import Synchronization
import Testing
@testable import SluiceGateway
import SluiceHTTP1

@Suite(.serialized) struct ProxyTests {
    @Test func chatCompletionJSON() async throws {
        try await GatewayHarness.run { h in
            let response = try await h.request("/v1/chat/completions", body: chatBody())
            #expect(response.status == 200)
            #expect(response.header("x-replica-id") == "r1")
            #expect(response.header("x-request-id")?.count == 32)
            #expect(response.text.contains(#""object":"chat.completion""#))
            #expect(response.text.contains(#""usage""#))
            #expect(h.inFlight() == 0)
        }
    }

    @Test func streamedTokensArriveBeforeTheReplicaFinishes() async throws {
        try await GatewayHarness.run(replicas: [GatewayHarness.slowReplica(interTokenDelay: .milliseconds(100))]) { h in
            try await h.withChatStream(maxTokens: 20) { iterator in
                guard case .head(let head) = try await iterator.next() else {
                    Issue.record("expected a response head")
                    return
                }
                #expect(head.status == .ok)
                #expect(head.headers.first(name: "content-type") == "text/event-stream")
                guard case .body(let first) = try await iterator.next() else {
                    Issue.record("expected a body part")
                    return
                }
                // The first token is here while the replica is still producing the other 19.
                #expect(String(buffer: first).hasPrefix("data: "))
                #expect(h.replicas[0].requestsRunning == 1)
                #expect(h.inFlight() == 1)
                var rest = ByteBuffer()
                var events = 1
                while let part = try await iterator.next() {
                    if case .body(var chunk) = part {
                        events += 1
                        rest.writeBuffer(&chunk)
                    }
                    if case .end = part { break }
                }
                #expect(events >= 5, "tokens arrive as separate parts, not one buffered body")
                #expect(String(buffer: rest).hasSuffix("data: [DONE]\n\n"))
            }
            #expect(await eventually { h.inFlight() == 0 })
        }
    }

    @Test func embeddings() async throws {
        try await GatewayHarness.run { h in
            let response = try await h.request("/v1/embeddings", body: #"{"model":"e","input":["a","b","c"]}"#)
            #expect(response.status == 200)
            #expect(response.text.contains(#""index":2"#))
        }
    }

    @Test func largeBodyPassesThroughIntactBothWays() async throws {
        try await GatewayHarness.run { h in
            var state: UInt64 = 0x9E37_79B9_7F4A_7C15
            let bytes = (0..<(3 << 20)).map { _ -> UInt8 in
                state ^= state << 13
                state ^= state >> 7
                state ^= state << 17
                return UInt8(truncatingIfNeeded: state)
            }
            let connection = try await TestHTTPConnection.connect(to: h.data, group: h.group)
            let echoed: TestResponse? = try await connection.channel.executeThenClose { inbound, outbound in
                var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/v1/echo")
                head.headers.add(name: "content-type", value: "application/octet-stream")
                head.headers.add(name: "transfer-encoding", value: "chunked")
                try await outbound.write(.head(head))
                for start in stride(from: 0, to: bytes.count, by: 64 * 1024) {
                    try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: bytes[start..<min(start + 64 * 1024, bytes.count)]))))
                }
                try await outbound.write(.end(nil))
                var iterator = inbound.makeAsyncIterator()
                return try await iterator.readResponse()
            }
            let response = try #require(echoed)
            #expect(response.status == 200)
            #expect(response.body.readableBytes == bytes.count)
            #expect(fnv1a(response.body.readableBytesView) == fnv1a(bytes))
        }
    }

    @Test func forwardedHeadersAreRewritten() async throws {
        try await GatewayHarness.run { h in
            let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            let response = try await h.request("/v1/echo", headers: [
                ("content-type", "text/plain"), ("x-request-id", "req-123"), ("traceparent", traceparent),
                ("x-forwarded-for", "203.0.113.9"), ("connection", "keep-alive, x-custom"), ("x-custom", "hop"),
                ("keep-alive", "timeout=5"),
            ], body: "ping")
            #expect(response.status == 200)
            #expect(response.text == "ping")
            #expect(response.header("x-seen-x-request-id") == "req-123")
            #expect(response.header("x-request-id") == "req-123")
            #expect(response.header("x-seen-traceparent") == traceparent)
            #expect(response.header("x-seen-x-forwarded-for") == "203.0.113.9, 127.0.0.1")
            #expect(response.header("x-seen-x-forwarded-proto") == "http")
            #expect(response.header("x-seen-connection") == "-")
            #expect(response.header("x-seen-keep-alive") == "-")
            #expect(response.header("x-seen-x-custom") == "-", "headers named in Connection are hop-by-hop")
            #expect(response.header("x-seen-host") == "sluice.test")

            let fresh = try await h.request("/v1/echo", headers: [("content-type", "text/plain")], body: "x")
            let created = try #require(fresh.header("x-seen-traceparent"))
            #expect(HeaderRewriter.isValidTraceparent(created))
            #expect(fresh.header("x-seen-x-request-id")?.count == 32)
        }
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() async throws {
        try await GatewayHarness.run { h in
            let connection = try await TestHTTPConnection.connect(to: h.data, group: h.group)
            try await connection.channel.executeThenClose { inbound, outbound in
                for prompt in ["one", "two", "three"] {
                    try await outbound.writeRequest(.POST, "/v1/echo", headers: [("content-type", "text/plain")], body: ByteBuffer(string: prompt))
                }
                var iterator = inbound.makeAsyncIterator()
                for expected in ["one", "two", "three"] {
                    let response = try await iterator.readResponse()
                    #expect(response?.text == expected)
                }
            }
        }
    }

    @Test func routesByModelAndRejectsBadJSON() async throws {
        try await GatewayHarness.run(replicas: [ReplicaConfiguration(id: "llama"), ReplicaConfiguration(id: "other")]) { config, ids in
            let paths = ["/v1/chat/completions"].compactMap(PathPattern.init)
            config.pools = [
                PoolConfiguration(name: "llama", paths: paths, models: ["llama-3"], replicas: [ids[0]]),
                PoolConfiguration(name: "rest", paths: paths, models: ["*"], replicas: [ids[1]]),
            ]
        } _: { h in
            let llama = try await h.request("/v1/chat/completions", body: chatBody(model: "llama-3"))
            #expect(llama.header("x-replica-id") == "llama")
            #expect(llama.text.contains(#""model":"llama-3""#), "the body is forwarded unchanged")
            let other = try await h.request("/v1/chat/completions", body: chatBody(model: "mistral"))
            #expect(other.header("x-replica-id") == "other")
            let bad = try await h.request("/v1/chat/completions", body: #"{"model":"llama-3","messages":["#)
            #expect(bad.status == 400)
            #expect(bad.text.contains(#""code":"invalid_json""#))
            #expect(bad.header("content-type") == "application/json")
        }
    }
}

/// FNV-1a over bytes: compares multi-megabyte bodies without printing them on failure.
func fnv1a(_ bytes: some Sequence<UInt8>) -> UInt64 {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in bytes {
        hash ^= UInt64(byte)
        hash = hash &* 0x0000_0100_0000_01B3
    }
    return hash
}

private final class ByteCounter: Sendable {
    let count = Atomic<Int>(0)
}

/// Sends one upload of `total` body bytes only as fast as the socket takes them, counting the
/// bytes whose write completed (the kernel accepted them), and collects the reply.
private final class UploadHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let total: Int
    let sent: ByteCounter
    let reply: EventLoopPromise<String>
    private var remaining: Int
    private var received = ""

    init(total: Int, sent: ByteCounter) {
        self.total = total
        self.sent = sent
        self.remaining = total
        self.reply = MultiThreadedEventLoopGroup.singleton.any().makePromise()
    }

    func channelActive(context: ChannelHandlerContext) {
        context.write(wrapOutboundOut(ByteBuffer(string: "POST /v1/sim/upload HTTP/1.1\r\nhost: x\r\ncontent-length: \(total)\r\n\r\n")), promise: nil)
        pump(context: context)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        pump(context: context)
    }

    private func pump(context: ChannelHandlerContext) {
        let sent = self.sent
        while remaining > 0, context.channel.isWritable {
            let size = min(remaining, 64 * 1024)
            remaining -= size
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(repeating: UInt8(ascii: "u"), count: size))).whenSuccess {
                sent.count.wrappingAdd(size, ordering: .relaxed)
            }
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        received += String(buffer: unwrapInboundIn(data))
        if received.hasSuffix("}") { reply.succeed(received) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        reply.succeed(received)
    }
}

@Suite(.serialized) struct BackpressureTests {
    /// The most the kernel can buffer on the client → gateway → replica path: two receive and two
    /// send buffers at their autotuning maximum (`tcp_rmem`/`tcp_wmem`, third field).
    static func kernelPathBufferBytes() -> Int {
        func maximum(_ name: String) -> Int {
            let text = (try? String(contentsOfFile: "/proc/sys/net/ipv4/\(name)", encoding: .utf8)) ?? ""
            return text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).last.flatMap { Int($0) } ?? (32 << 20)
        }
        return 2 * (maximum("tcp_rmem") + maximum("tcp_wmem"))
    }

    @Test func aSlowReplicaHoldsTheUploadBackInsteadOfFillingTheGateway() async throws {
        // Larger than anything the kernel could hold, so a gateway that buffered would show.
        let kernel = Self.kernelPathBufferBytes()
        let total = max(64 << 20, (2 * kernel) / (64 * 1024) * (64 * 1024))
        try await GatewayHarness.run(configure: { config, _ in config.limits.maxBodyBytes = 2 * total }) { h in
            h.replicas[0].pauseUploads()
            let sent = ByteCounter()
            let uploader = UploadHandler(total: total, sent: sent)
            let channel = try await ClientBootstrap(group: h.group)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(uploader) }
                }
                .connect(to: h.data).get()
            // The client must stall while the replica reads nothing: the gateway stops reading
            // from it once the replica's side is full.
            var last = -1
            var steady = 0
            _ = await eventually(timeout: .seconds(20)) {
                let now = sent.count.load(ordering: .relaxed)
                steady = now == last ? steady + 1 : 0
                last = now
                try? await Task.sleep(for: .milliseconds(100))
                return steady >= 3
            }
            #expect(steady >= 3, "the client kept sending")
            // What the client's kernel took fits in the kernel buffers of the path plus a little:
            // the gateway itself holds at most a few reads.
            #expect(last <= kernel + (4 << 20), "the client sent \(last) of \(total) bytes to a replica that reads nothing (kernel buffers: \(kernel))")
            // Let the replica read: everything arrives, and the answer counts all of it.
            h.replicas[0].resumeUploads()
            let reply = try await uploader.reply.futureResult.get()
            #expect(reply.hasPrefix("HTTP/1.1 200"))
            #expect(reply.hasSuffix(#"{"received":\#(total)}"#))
            #expect(h.replicas[0].uploadedBytes == total)
            #expect(sent.count.load(ordering: .relaxed) == total)
            try? await channel.close()
        }
    }

    @Test func aSlowReaderHoldsTheReplicaBackInsteadOfFillingTheGateway() async throws {
        let total = 64 << 20
        try await GatewayHarness.run { h in
            let connection = try await TestHTTPConnection.connect(to: h.data, group: h.group)
            try await connection.channel.executeThenClose { inbound, outbound in
                try await outbound.writeRequest(.GET, "/v1/sim/download?bytes=\(total)")
                var iterator = inbound.makeAsyncIterator()
                guard case .head(let head) = try await iterator.next() else {
                    Issue.record("expected a head")
                    return
                }
                #expect(head.headers.first(name: "content-length") == String(total))
                // Stop reading. The replica must stall well short of the whole body: the gateway
                // stops reading from it once the client side is full.
                var last = -1
                var steady = 0
                _ = await eventually(timeout: .seconds(20)) {
                    let now = h.replicas[0].downloadedBytes
                    steady = now == last ? steady + 1 : 0
                    last = now
                    try? await Task.sleep(for: .milliseconds(100))
                    return steady >= 3
                }
                #expect(steady >= 3, "the replica kept writing")
                #expect(last < total / 2, "the replica wrote \(last) of \(total) bytes to a client that reads nothing")
                // Read the rest: everything arrives, in order and complete.
                var received = 0
                while let part = try await iterator.next() {
                    if case .body(let chunk) = part { received += chunk.readableBytes }
                    if case .end = part { break }
                }
                #expect(received == total)
            }
        }
    }
}
