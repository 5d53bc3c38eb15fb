import NIOCore
import NIOSSL
import SluiceConfig

/// How connections to one replica are made and kept, from the pool's configuration.
struct UpstreamSettings: Sendable {
    var maxConnections: Int
    var keepaliveIdle: TimeAmount
    var connectTimeout: TimeAmount
    var wire: UpstreamProtocol = .http1
    /// TLS to the replica, made once per pool (nil: cleartext).
    var tls: NIOSSLContext?
    var serverName: String?
    var maxConcurrentStreams = 100

    /// Throws when the pool's TLS files do not load.
    init(_ pool: PoolConfiguration) throws(UpstreamTLS.LoadError) {
        maxConnections = pool.upstream.maxConnections
        keepaliveIdle = .nanoseconds(pool.upstream.keepaliveIdle.nanoseconds)
        connectTimeout = .nanoseconds(pool.timeouts.connect.nanoseconds)
        wire = pool.upstream.wire
        maxConcurrentStreams = pool.upstream.maxConcurrentStreams
        serverName = pool.upstream.tls?.serverName
        if pool.upstream.tls != nil || pool.upstream.wire == .h2 {
            tls = try UpstreamTLS.context(pool.upstream.tls ?? UpstreamTLSConfiguration(), wire: pool.upstream.wire)
        }
    }

    init(maxConnections: Int, keepaliveIdle: TimeAmount, connectTimeout: TimeAmount) {
        self.maxConnections = maxConnections
        self.keepaliveIdle = keepaliveIdle
        self.connectTimeout = connectTimeout
    }

    var isHTTP2: Bool { wire != .http1 }
}

/// The client side of TLS to replicas.
enum UpstreamTLS {
    struct LoadError: Error, CustomStringConvertible {
        var description: String
    }

    static func context(_ configuration: UpstreamTLSConfiguration, wire: UpstreamProtocol) throws(LoadError) -> NIOSSLContext {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.applicationProtocols = wire == .h2 ? ["h2"] : ["http/1.1"]
        do {
            if let caFile = configuration.caFile { tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(caFile)) }
            if let certFile = configuration.certFile, let keyFile = configuration.keyFile {
                tls.certificateChain = try NIOSSLCertificate.fromPEMFile(certFile).map { .certificate($0) }
                tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: keyFile, format: .pem))
            }
            return try NIOSSLContext(configuration: tls)
        } catch {
            let files = [configuration.caFile, configuration.certFile, configuration.keyFile].compactMap { $0 }.joined(separator: ", ")
            throw LoadError(description: "upstream tls (\(files)): \(error)")
        }
    }

    /// The TLS handler for a connection to `host`: SNI and the name checked is `serverName`,
    /// else the host (SNI is not sent for an IP address).
    static func handler(_ context: NIOSSLContext, host: String, serverName: String?) throws -> NIOSSLClientHandler {
        let name = serverName ?? host
        let isAddress = (try? SocketAddress(ipAddress: name, port: 0)) != nil
        return try NIOSSLClientHandler(context: context, serverHostname: isAddress ? nil : name)
    }
}
