/// The data listener's TLS: with it, `listen` speaks TLS and offers `h2` and `http/1.1` by ALPN;
/// without it, `listen` serves HTTP/1.1 and HTTP/2 with prior knowledge (h2c) on the same port.
public struct ListenerTLSConfiguration: Sendable, Equatable {
    /// PEM: the server certificate, then its chain.
    public var certFile: String
    /// PEM: the certificate's private key.
    public var keyFile: String
    /// PEM bundle of CAs: when set, clients must present a certificate one of them signed.
    public var clientCAFile: String?
    /// How often the files are read again; a change is served to new connections (a failed
    /// load keeps the last good certificate). Zero: only on `POST /admin/reload` and SIGHUP.
    public var reloadInterval: Duration = .seconds(10)

    public init(certFile: String, keyFile: String, clientCAFile: String? = nil) {
        self.certFile = certFile
        self.keyFile = keyFile
        self.clientCAFile = clientCAFile
    }
}

/// What an HTTP/2 client may make the gateway hold, per connection. Defaults are nginx's and
/// NIO's: 100 streams, 64 KiB windows, and the HTTP/1.1 header cap for the header list.
public struct HTTP2Configuration: Sendable, Equatable {
    /// SETTINGS_MAX_CONCURRENT_STREAMS: streams a client may have open at once.
    public var maxConcurrentStreams = 100
    /// The window each stream's request body gets (SETTINGS_INITIAL_WINDOW_SIZE): what a stream
    /// buffers before the gateway stops granting more.
    public var initialWindowSize = 65_535
    /// The connection-wide receive window, over all streams.
    public var connectionWindowSize = 1 << 20
    /// SETTINGS_MAX_HEADER_LIST_SIZE; nil: `limits.max_header_bytes`.
    public var maxHeaderListSize: Int?
    /// Streams a client may reset (or have reset for its errors) within `resetWindow` before the
    /// connection gets GOAWAY (rapid reset, CVE-2023-44487).
    public var maxResets = 200
    public var resetWindow: Duration = .seconds(30)
    /// Idle connections (no open stream) are closed with GOAWAY after this.
    public var idleTimeout: Duration = .seconds(75)

    public init() {}
}
