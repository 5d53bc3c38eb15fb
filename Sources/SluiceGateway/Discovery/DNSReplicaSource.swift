import NIOCore
import SluiceConfig
import SluiceCore

/// A headless Service's replicas from DNS: the A and AAAA records of a name, each at the
/// configured port, or the SRV records of a name with their own ports (`DNSResolver`).
struct DNSReplicaSource: ReplicaSource {
    let resolver: DNSResolver?
    let name: String
    /// Nil: SRV records give the ports.
    let port: Int?

    struct NoResolver: Error, CustomStringConvertible {
        var description: String { "no name server: set discovery.resolver, or list one in /etc/resolv.conf" }
    }

    func replicas() async throws -> [ReplicaID] {
        guard let resolver else { throw NoResolver() }
        if let port { return try await resolver.addresses(of: name, port: port) }
        return try await resolver.services(name)
    }

    /// The resolver `discovery` names, else the system's first name server.
    static func resolver(_ discovery: DiscoveryConfiguration, _ group: any EventLoopGroup) -> DNSResolver? {
        let server = discovery.resolver.flatMap { try? SocketAddress(ipAddress: $0.host, port: $0.port) } ?? DNSResolver.systemServer()
        return server.map { DNSResolver(server: $0, group: group) }
    }
}
