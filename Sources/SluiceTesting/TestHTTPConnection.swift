import NIOCore
import NIOHTTP1
import NIOPosix

/// One HTTP/1.1 client connection for integration tests, with full control over what is sent
/// and when (pipelining, oversized headers, disconnecting mid-stream) and every response part
/// observable as it arrives.
public final class TestHTTPConnection: Sendable {
    public let channel: NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>

    private init(channel: NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>) {
        self.channel = channel
    }

    public static func connect(to address: SocketAddress, group: any EventLoopGroup) async throws -> TestHTTPConnection {
        let channel = try await ClientBootstrap(group: group)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .connect(to: address) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                }
            }
        return TestHTTPConnection(channel: channel)
    }
}

extension NIOAsyncChannelOutboundWriter<HTTPClientRequestPart> {
    /// Writes a whole request (head, optional body, end).
    public func writeRequest(_ method: HTTPMethod, _ uri: String, headers: [(String, String)] = [], body: ByteBuffer? = nil) async throws {
        var head = HTTPRequestHead(version: .http1_1, method: method, uri: uri)
        head.headers.add(name: "host", value: "sluice.test")
        for (name, value) in headers { head.headers.add(name: name, value: value) }
        if let body, !head.headers.contains(name: "content-length"), !head.headers.contains(name: "transfer-encoding") {
            head.headers.add(name: "content-length", value: String(body.readableBytes))
        }
        try await write(.head(head))
        if let body { try await write(.body(.byteBuffer(body))) }
        try await write(.end(nil))
    }
}

/// A response read whole.
public struct TestResponse: Sendable {
    public var head: HTTPResponseHead
    public var body: ByteBuffer

    public var status: Int { Int(head.status.code) }
    public var text: String { String(buffer: body) }
    public func header(_ name: String) -> String? { head.headers.first(name: name) }
}

extension NIOAsyncChannelInboundStream<HTTPClientResponsePart>.AsyncIterator {
    /// Reads parts up to and including the next response's end.
    public mutating func readResponse() async throws -> TestResponse? {
        var head: HTTPResponseHead?
        var body = ByteBuffer()
        while let part = try await next() {
            switch part {
            case .head(let value): head = value
            case .body(var chunk): body.writeBuffer(&chunk)
            case .end:
                guard let head else { return nil }
                return TestResponse(head: head, body: body)
            }
        }
        return nil
    }
}

extension TestHTTPConnection {
    /// Opens a connection, sends one request, reads one response, closes.
    public static func request(
        _ method: HTTPMethod, _ uri: String, to address: SocketAddress, group: any EventLoopGroup,
        headers: [(String, String)] = [], body: String? = nil
    ) async throws -> TestResponse {
        let connection = try await connect(to: address, group: group)
        return try await connection.channel.executeThenClose { inbound, outbound in
            do {
                try await outbound.writeRequest(method, uri, headers: headers, body: body.map { ByteBuffer(string: $0) })
            } catch {
                // A server may answer early (413, 431) and close while the request is still
                // going out; what it answered is still readable below.
            }
            var iterator = inbound.makeAsyncIterator()
            guard let response = try await iterator.readResponse() else {
                throw ChannelError.eof
            }
            return response
        }
    }
}
