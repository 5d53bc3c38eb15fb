import ArgumentParser
import NIOCore
import NIOPosix
import SluiceGateway
import Synchronization

/// `sluice relay`: a plain TCP relay on SwiftNIO (each client connection glued to its own
/// backend connection, bytes forwarded as they come, no HTTP). It is not a gateway feature: it is
/// the floor for any proxy built on SwiftNIO on this machine, measured by `loadtest/overhead.sh`
/// next to Sluice so the cost of Sluice's HTTP handling shows on its own.
struct RelayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "relay",
        abstract: "Benchmark floor: a TCP relay on SwiftNIO (no HTTP), round-robin over backends.",
        shouldDisplay: false)

    @Option(name: .long, help: "Listener, host:port.")
    var listen = "127.0.0.1:22030"

    @Option(name: .long, help: "A backend host:port (repeat for several).")
    var to: [String] = []

    @Option(name: .long, help: "Event-loop threads.")
    var workers = 2

    @Flag(name: .long, help: "Pin each event loop to its own CPU (as pin_workers: true).")
    var pinWorkers = false

    func run() async throws {
        let backends = try to.map { text -> SocketAddress in
            let parts = text.split(separator: ":")
            guard parts.count == 2, let port = Int(parts[1]) else { throw ValidationError("--to takes host:port") }
            return try SocketAddress(ipAddress: String(parts[0]), port: port)
        }
        guard !backends.isEmpty else { throw ValidationError("give at least one --to") }
        let parts = listen.split(separator: ":")
        guard parts.count == 2, let port = Int(parts[1]) else { throw ValidationError("--listen takes host:port") }
        let (group, _) = WorkerAffinity.makeGroup(workers: workers, pinned: pinWorkers)
        let next = Atomic<Int>(0)
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelOption(.autoRead, value: false)
            .childChannelInitializer { client in
                let backend = backends[next.wrappingAdd(1, ordering: .relaxed).newValue % backends.count]
                return ClientBootstrap(group: client.eventLoop)
                    .channelOption(.tcpOption(.tcp_nodelay), value: 1)
                    .connect(to: backend)
                    .flatMap { upstream in
                        let (clientSide, upstreamSide) = RelayGlueHandler.matchedPair()
                        return client.pipeline.addHandler(clientSide)
                            .flatMap { upstream.pipeline.addHandler(upstreamSide) }
                            .flatMap { client.setOption(.autoRead, value: true) }
                    }
            }
            .bind(host: String(parts[0]), port: port).get()
        print("sluice relay on \(server.localAddress!) -> \(to.joined(separator: ", "))")
        try await server.closeFuture.get()
    }
}

/// Two channels glued as partners (swift-nio-examples' GlueHandler): reads pass on only while
/// the partner is writable; a close on one side closes the other. Both channels share one event
/// loop, so no lock is needed.
final class RelayGlueHandler: ChannelDuplexHandler, @unchecked Sendable {
    typealias InboundIn = NIOAny
    typealias OutboundIn = NIOAny
    typealias OutboundOut = NIOAny

    private var partner: RelayGlueHandler?
    private var context: ChannelHandlerContext?
    private var pendingRead = false

    static func matchedPair() -> (RelayGlueHandler, RelayGlueHandler) {
        let first = RelayGlueHandler()
        let second = RelayGlueHandler()
        first.partner = second
        second.partner = first
        return (first, second)
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        partner = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        partner?.context?.write(data, promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        partner?.context?.flush()
    }

    func channelInactive(context: ChannelHandlerContext) {
        partner?.context?.close(promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, let partner, partner.pendingRead {
            partner.pendingRead = false
            partner.context?.read()
        }
    }

    func read(context: ChannelHandlerContext) {
        if let partnerContext = partner?.context, partnerContext.channel.isWritable {
            context.read()
        } else {
            pendingRead = true
        }
    }
}
