public struct UpstreamConfiguration: Sendable, Equatable {
    /// Connections per replica *per event loop* (pools are per loop, like Envoy's per-worker pools).
    public var maxConnections = 1024
    /// How long an unused keep-alive connection stays open. Kept below uvicorn's 5 s (vLLM,
    /// MLServer, KServe), so the gateway, not the replica, closes idle connections.
    public var keepaliveIdle: Duration = .seconds(4)
    /// How requests go to the replicas: HTTP/1.1 (with `tls`: https), HTTP/2 in cleartext
    /// with prior knowledge (gRPC servers' plain ports), or HTTP/2 over TLS.
    public var wire: UpstreamProtocol = .http1
    /// TLS to the replicas; `h2` without it trusts the system's CAs.
    public var tls: UpstreamTLSConfiguration?
    /// HTTP/2: streams one connection carries at once before another is opened (the replica's
    /// own SETTINGS_MAX_CONCURRENT_STREAMS lowers it).
    public var maxConcurrentStreams = 100

    public init() {}
}

public enum UpstreamProtocol: String, Sendable, Equatable, CaseIterable {
    case http1, h2c, h2
}

/// TLS to replicas: whom to trust, and the gateway's own certificate for mutual TLS.
public struct UpstreamTLSConfiguration: Sendable, Equatable {
    /// PEM CA bundle the replicas' certificates must chain to; nil: the system's.
    public var caFile: String?
    /// PEM client certificate and key, for replicas that ask for one.
    public var certFile: String?
    public var keyFile: String?
    /// SNI and the name the certificate must carry; nil: the replica's host.
    public var serverName: String?

    public init(caFile: String? = nil, certFile: String? = nil, keyFile: String? = nil, serverName: String? = nil) {
        self.caFile = caFile
        self.certFile = certFile
        self.keyFile = keyFile
        self.serverName = serverName
    }
}
