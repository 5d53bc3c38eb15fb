import Logging
import ServiceLifecycle

/// Reads the listener's certificate files every `tls.reload_interval` and serves a changed
/// certificate to new connections; a failed load is logged (at most every 10 s) and the last
/// good certificate stays. A `Service`: it runs until the group shuts down.
final class CertificateReloader: Service, Sendable {
    private let certificates: ListenerCertificates?
    private let logger: Logger

    init(certificates: ListenerCertificates?, logger: Logger) {
        self.certificates = certificates
        self.logger = logger
    }

    func run() async throws {
        // (A service that returns before the group shuts down stops the group.)
        guard let certificates, certificates.configuration.reloadInterval > .zero else {
            try? await gracefulShutdown()
            return
        }
        let failures = RateLimitedLog(logger: logger)
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: certificates.configuration.reloadInterval)
                if Task.isCancelled { break }
                do {
                    if try certificates.reload() {
                        self.logger.notice("listener certificate reloaded", metadata: ["cert_file": "\(certificates.configuration.certFile)"])
                    }
                } catch {
                    failures.warning("listener certificate not reloaded: the last good one stays", metadata: ["error": "\(error)"])
                }
            }
        }
        try? await gracefulShutdown()
    }
}
