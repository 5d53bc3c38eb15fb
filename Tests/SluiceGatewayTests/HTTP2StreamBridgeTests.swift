import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP2
import Testing
@testable import SluiceGateway

/// The stream bridge alone on an `EmbeddedChannel`: the HTTP/1.1 bytes the data path sees for
/// a stream's frames, and the frames a client gets for the bytes the data path writes.
@Suite struct HTTP2StreamBridgeTests {
    func channel() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(HTTP2StreamBridge(maxHeadBytes: 16_384))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return channel
    }

    func inbound(_ channel: EmbeddedChannel) throws -> String {
        var text = ""
        while var buffer = try channel.readInbound(as: ByteBuffer.self) { text += buffer.readString(length: buffer.readableBytes)! }
        return text
    }

    func outbound(_ channel: EmbeddedChannel) throws -> [HTTP2Frame.FramePayload] {
        var frames: [HTTP2Frame.FramePayload] = []
        while let frame = try channel.readOutbound(as: HTTP2Frame.FramePayload.self) { frames.append(frame) }
        return frames
    }

    static func request(_ fields: [(String, String)], endStream: Bool) -> HTTP2Frame.FramePayload {
        .headers(.init(headers: HPACKHeaders([(":method", "POST"), (":scheme", "https"), (":path", "/v1/chat/completions"), (":authority", "api.test")] + fields), endStream: endStream))
    }

    @Test func aRequestHeadBecomesTheHTTP1HeadTheParserReads() throws {
        let channel = try channel()
        try channel.writeInbound(Self.request([("host", "other.test"), ("cookie", "a=1"), ("te", "trailers"), ("content-type", "application/json"), ("cookie", "b=2"), ("content-length", "2")], endStream: false))
        try channel.writeInbound(HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(ByteBuffer(string: "{}")), endStream: true)))
        #expect(try inbound(channel) == "POST /v1/chat/completions HTTP/1.1\r\nhost: api.test\r\ncontent-type: application/json\r\ncontent-length: 2\r\ncookie: a=1; b=2\r\n\r\n{}")
    }

    @Test func aBodyWithoutLengthIsChunkedWithItsTrailers() throws {
        let channel = try channel()
        try channel.writeInbound(Self.request([], endStream: false))
        try channel.writeInbound(HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(ByteBuffer(string: "hello")))))
        try channel.writeInbound(HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(ByteBuffer(string: " world!")))))
        try channel.writeInbound(HTTP2Frame.FramePayload.headers(.init(headers: ["x-checksum": "42"], endStream: true)))
        #expect(try inbound(channel) == "POST /v1/chat/completions HTTP/1.1\r\nhost: api.test\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n7\r\n world!\r\n0\r\nx-checksum: 42\r\n\r\n")
    }

    @Test func aRequestEndingWithItsHeadersHasNoBody() throws {
        let channel = try channel()
        try channel.writeInbound(Self.request([], endStream: true))
        #expect(try inbound(channel) == "POST /v1/chat/completions HTTP/1.1\r\nhost: api.test\r\ncontent-length: 0\r\n\r\n")
        let get = try self.channel()
        try get.writeInbound(HTTP2Frame.FramePayload.headers(.init(headers: [":method": "GET", ":scheme": "http", ":path": "/v1/models", ":authority": "a"], endStream: true)))
        #expect(try inbound(get) == "GET /v1/models HTTP/1.1\r\nhost: a\r\n\r\n")
    }

    @Test func aSmallResponseIsOneHeaderBlockAndOneDataFrameThatEndsTheStream() throws {
        let channel = try channel()
        try channel.writeInbound(Self.request([], endStream: true))
        _ = try inbound(channel)
        try channel.writeOutbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nconnection: keep-alive\r\ncontent-length: 2\r\n\r\n{}"))
        channel.flush()
        let frames = try outbound(channel)
        guard frames.count == 2, case .headers(let headers) = frames[0], case .data(let data) = frames[1] else {
            Issue.record("frames: \(frames)")
            return
        }
        #expect(Array(headers.headers.map { "\($0.name)=\($0.value)" }) == [":status=200", "content-type=application/json", "content-length=2"])
        #expect(!headers.endStream)
        #expect(data.endStream)
        guard case .byteBuffer(let body) = data.data else { return }
        #expect(String(buffer: body) == "{}")
    }

    @Test func aChunkedResponseBecomesDataFramesAndAnEmptyEnd() throws {
        let channel = try channel()
        try channel.writeInbound(Self.request([], endStream: true))
        _ = try inbound(channel)
        try channel.writeOutbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\ncontent-length: 99\r\n\r\n"))
        // (ClientWriter writes a chunk as three buffers.)
        for part in ["6\r\n", "data: ", "\r\n"] { try channel.writeOutbound(ByteBuffer(string: part)) }
        channel.flush()
        var frames = try outbound(channel)
        #expect(frames.count == 2)
        if case .headers(let headers) = frames.first {
            #expect(headers.headers.first(name: "content-length") == nil)
            #expect(headers.headers.first(name: "transfer-encoding") == nil)
        }
        try channel.writeOutbound(ByteBuffer(string: "0\r\n\r\n"))
        frames = try outbound(channel)
        guard frames.count == 1, case .data(let end) = frames[0] else { Issue.record("frames: \(frames)"); return }
        #expect(end.endStream)
    }

    @Test func aHeadResponseEndsWithItsHeaderBlockAndInterimAnswersGoFirst() throws {
        let channel = try channel()
        try channel.writeInbound(HTTP2Frame.FramePayload.headers(.init(headers: [":method": "HEAD", ":scheme": "http", ":path": "/", ":authority": "a"], endStream: true)))
        _ = try inbound(channel)
        try channel.writeOutbound(ByteBuffer(string: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"))
        let frames = try outbound(channel)
        guard frames.count == 2, case .headers(let interim) = frames[0], case .headers(let final) = frames[1] else { Issue.record("frames: \(frames)"); return }
        #expect(interim.headers.first(name: ":status") == "100")
        #expect(!interim.endStream)
        #expect(final.headers.first(name: ":status") == "200")
        #expect(final.endStream)
    }

    @Test func closingTheSendingSideLeavesTheStreamOpenAndAFenceWaitsForTheEnd() throws {
        let channel = try channel()
        try channel.writeInbound(Self.request([], endStream: false))
        _ = try inbound(channel)
        try channel.writeOutbound(ByteBuffer(string: "HTTP/1.1 413 Payload Too Large\r\ncontent-length: 0\r\n\r\n"))
        let fence = channel.eventLoop.makePromise(of: Void.self)
        channel.writeAndFlush(ByteBuffer(), promise: fence)
        #expect(try outbound(channel).count == 1)
        try fence.futureResult.wait()
        let output = channel.eventLoop.makePromise(of: Void.self)
        channel.close(mode: .output, promise: output)
        try output.futureResult.wait()
        #expect(channel.isActive)
    }
}
