import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP2
import Testing
@testable import SluiceGateway

/// The upstream bridge alone: the frames a replica gets for the request bytes the data path
/// writes, and the HTTP/1.1 bytes the data path reads for the replica's frames; gRPC's
/// trailers go through both bridges.
@Suite struct HTTP2UpstreamBridgeTests {
    func channel() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(HTTP2UpstreamBridge(tls: false))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return channel
    }

    func frames(_ channel: EmbeddedChannel) throws -> [HTTP2Frame.FramePayload] {
        var frames: [HTTP2Frame.FramePayload] = []
        while let frame = try channel.readOutbound(as: HTTP2Frame.FramePayload.self) { frames.append(frame) }
        return frames
    }

    func inbound(_ channel: EmbeddedChannel) throws -> String {
        var text = ""
        while var buffer = try channel.readInbound(as: ByteBuffer.self) { text += buffer.readString(length: buffer.readableBytes)! }
        return text
    }

    @Test func aGRPCRequestBecomesAHeaderBlockWithTETrailersAndDataThatEndsTheStream() throws {
        let channel = try channel()
        let message = "\0\0\0\0\u{3}abc"
        try channel.writeOutbound(ByteBuffer(string: "POST /inference.GRPCInferenceService/ModelInfer HTTP/1.1\r\nHost: 127.0.0.1:9000\r\ncontent-type: application/grpc\r\ntransfer-encoding: chunked\r\nx-request-id: r1\r\n\r\n8\r\n\(message)\r\n0\r\n\r\n"))
        let sent = try frames(channel)
        guard sent.count == 2, case .headers(let headers) = sent[0], case .data(let data) = sent[1] else { Issue.record("frames: \(sent)"); return }
        #expect(Array(headers.headers.map { "\($0.name)=\($0.value)" }) == [
            ":method=POST", ":scheme=http", ":path=/inference.GRPCInferenceService/ModelInfer", ":authority=127.0.0.1:9000",
            "content-type=application/grpc", "x-request-id=r1", "te=trailers",
        ])
        #expect(!headers.endStream)
        #expect(data.endStream)
        guard case .byteBuffer(let body) = data.data else { return }
        #expect(String(buffer: body) == message)
    }

    @Test func aResponseWithTrailersIsChunkedWithThemAndATrailersOnlyOneHasNoBody() throws {
        let channel = try channel()
        try channel.writeOutbound(ByteBuffer(string: "GET / HTTP/1.1\r\nhost: a\r\n\r\n"))
        try channel.writeInbound(HTTP2Frame.FramePayload.headers(.init(headers: [":status": "200", "content-type": "application/grpc"])))
        try channel.writeInbound(HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(ByteBuffer(string: "hello")))))
        try channel.writeInbound(HTTP2Frame.FramePayload.headers(.init(headers: ["grpc-status": "0", "grpc-message": "ok"], endStream: true)))
        #expect(try inbound(channel) == "HTTP/1.1 200 \r\ncontent-type: application/grpc\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\ngrpc-status: 0\r\ngrpc-message: ok\r\n\r\n")
        let only = try self.channel()
        try only.writeOutbound(ByteBuffer(string: "GET / HTTP/1.1\r\nhost: a\r\n\r\n"))
        try only.writeInbound(HTTP2Frame.FramePayload.headers(.init(headers: [":status": "200", "grpc-status": "5"], endStream: true)))
        #expect(try inbound(only) == "HTTP/1.1 200 \r\ngrpc-status: 5\r\ncontent-length: 0\r\n\r\n")
    }

    @Test func theListenerBridgeEndsTheStreamWithTheReplicasTrailers() throws {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(HTTP2StreamBridge(maxHeadBytes: 16_384))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try channel.writeInbound(HTTP2Frame.FramePayload.headers(.init(headers: [":method": "POST", ":scheme": "http", ":path": "/x", ":authority": "a", "content-type": "application/grpc"], endStream: true)))
        try channel.writeOutbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\ncontent-type: application/grpc\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nGrpc-Status: 0\r\ngrpc-message: ok\r\n\r\n"))
        let sent = try frames(channel)
        guard sent.count == 3, case .headers(let head) = sent[0], case .data(let data) = sent[1], case .headers(let trailers) = sent[2] else {
            Issue.record("frames: \(sent)")
            return
        }
        #expect(!head.endStream && !data.endStream && trailers.endStream)
        #expect(Array(trailers.headers.map { "\($0.name)=\($0.value)" }) == ["grpc-status=0", "grpc-message=ok"])
    }

    @Test func gatewayRefusalsOfGRPCCallsAreGRPCStatuses() {
        #expect(GRPCAnswer.status(forHTTP: 429) == 8)
        #expect(GRPCAnswer.status(forHTTP: 503) == 14)
        #expect(GRPCAnswer.status(forHTTP: 404) == 12)
        #expect(GRPCAnswer.status(forHTTP: 504) == 4)
        #expect(GRPCAnswer.percentEncoded("50% of é") == "50%25 of %C3%A9")
        let out = GRPCAnswer.render(
            status: 429, jsonBody: #"{"error":{"message":"Rate limit reached for team-a.","type":"x","code":"rate_limit_exceeded"}}"#,
            requestID: "r1", fields: [("retry-after", "3")], close: false, allocator: ByteBufferAllocator())
        #expect(String(buffer: out) == "HTTP/1.1 200 OK\r\ncontent-type: application/grpc\r\ngrpc-status: 8\r\ngrpc-message: Rate limit reached for team-a.\r\ngrpc-retry-pushback-ms: 3000\r\nretry-after: 3\r\nx-request-id: r1\r\ncontent-length: 0\r\n\r\n")
    }
}
