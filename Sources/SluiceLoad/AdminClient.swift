import Foundation
import NIOCore
import NIOPosix

/// Plain HTTP/1.1 requests to a gateway's admin listener, one connection each (`connection:
/// close`), with a deadline: what the load harness needs to sample the gateway and to act on
/// its scale decisions.
public struct AdminClient: Sendable {
    public let host: String
    public let port: Int
    /// Sent as `Authorization: Bearer` on `/admin/*` calls.
    public let token: String?
    let group: any EventLoopGroup

    public init?(url: String, token: String? = nil, group: any EventLoopGroup) {
        guard let (host, port) = LoadRunner.parseTarget(url) else { return nil }
        self.host = host
        self.port = port
        self.token = token
        self.group = group
    }

    public struct Response: Sendable {
        public var status: Int
        public var body: String
    }

    /// One request; nil when the gateway did not answer within `timeout`.
    public func request(_ method: String, _ path: String, body: String? = nil, timeout: TimeAmount = .seconds(1)) async -> Response? {
        guard let address = try? SocketAddress.makeAddressResolvingHost(host, port: port) else { return nil }
        let collector = ResponseCollector(promise: group.next().makePromise())
        var request = "\(method) \(path) HTTP/1.1\r\nhost: \(host):\(port)\r\nconnection: close\r\n"
        if let token { request += "authorization: Bearer \(token)\r\n" }
        if let body { request += "content-type: application/json\r\ncontent-length: \(body.utf8.count)\r\n" }
        request += "\r\n" + (body ?? "")
        guard let channel = try? await ClientBootstrap(group: group)
            .connectTimeout(timeout)
            .channelInitializer({ channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(collector) }
            })
            .connect(to: address).get()
        else {
            collector.promise.fail(ChannelError.connectTimeout(timeout))
            return nil
        }
        channel.writeAndFlush(ByteBuffer(string: request), promise: nil)
        channel.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
        guard let text = try? await collector.promise.futureResult.get(),
              let split = text.range(of: "\r\n\r\n")
        else { return nil }
        let statusLine = text[..<(text.range(of: "\r\n")?.lowerBound ?? split.lowerBound)].split(separator: " ")
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else { return nil }
        return Response(status: status, body: String(text[split.upperBound...]))
    }

    /// `request` whose body is a JSON object.
    public func json(_ method: String, _ path: String, body: String? = nil) async -> [String: Any]? {
        guard let response = await request(method, path, body: body), (200..<300).contains(response.status) else { return nil }
        return (try? JSONSerialization.jsonObject(with: Data(response.body.utf8))) as? [String: Any]
    }
}

/// Collects a whole response until the server closes.
private final class ResponseCollector: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer

    let promise: EventLoopPromise<String>
    private var text = ""

    init(promise: EventLoopPromise<String>) {
        self.promise = promise
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        text += String(buffer: unwrapInboundIn(data))
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.succeed(text)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
