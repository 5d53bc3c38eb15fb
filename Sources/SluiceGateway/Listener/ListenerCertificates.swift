import Foundation
import NIOSSL
import SluiceConfig
import Synchronization

/// The data listener's TLS context, built from PEM files and replaced when they change: each
/// new connection takes the current one, connections already open keep theirs. A load that
/// fails (a half-written file, a key that does not match its certificate) leaves the last good
/// context serving (cert-manager and kubelet replace a Secret's files by swapping a symlink;
/// Envoy's SDS file watch and HAProxy's `set ssl cert` keep the old one on failure the same way).
final class ListenerCertificates: Sendable {
    struct LoadError: Error, CustomStringConvertible {
        var description: String
    }

    private struct Loaded {
        var context: NIOSSLContext
        /// The files' bytes when loaded: a reload that finds the same bytes changes nothing.
        var files: [Data?]
    }

    let configuration: ListenerTLSConfiguration
    private let loaded: Mutex<Loaded>

    /// Loads the files; throws (naming the file and what is wrong) when they cannot serve.
    init(_ configuration: ListenerTLSConfiguration) throws(LoadError) {
        self.configuration = configuration
        let files = Self.read(configuration)
        self.loaded = Mutex(Loaded(context: try Self.context(configuration, files), files: files))
    }

    /// For the next connection.
    var context: NIOSSLContext { loaded.withLock { $0.context } }

    /// Reads the files again; returns whether the certificate changed. Throws, keeping the
    /// current context, when the new files do not load.
    @discardableResult
    func reload() throws(LoadError) -> Bool {
        let files = Self.read(configuration)
        if loaded.withLock({ $0.files == files }) { return false }
        let context = try Self.context(configuration, files)
        loaded.withLock { $0 = Loaded(context: context, files: files) }
        return true
    }

    private static func read(_ configuration: ListenerTLSConfiguration) -> [Data?] {
        [configuration.certFile, configuration.keyFile, configuration.clientCAFile].map { path in
            path.flatMap { FileManager.default.contents(atPath: $0) }
        }
    }

    private static func context(_ configuration: ListenerTLSConfiguration, _ files: [Data?]) throws(LoadError) -> NIOSSLContext {
        func pem(_ index: Int, _ path: String) throws(LoadError) -> [UInt8] {
            guard let data = files[index] else { throw LoadError(description: "cannot read \(path)") }
            return Array(data)
        }
        do {
            let chain = try NIOSSLCertificate.fromPEMBytes(try pem(0, configuration.certFile))
            guard !chain.isEmpty else { throw LoadError(description: "\(configuration.certFile): no PEM certificate in it") }
            let key: NIOSSLPrivateKey
            do {
                key = try NIOSSLPrivateKey(bytes: try pem(1, configuration.keyFile), format: .pem)
            } catch let error as LoadError {
                throw error
            } catch {
                throw LoadError(description: "\(configuration.keyFile): not a PEM private key (\(error))")
            }
            var tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
            tls.applicationProtocols = ["h2", "http/1.1"]
            tls.minimumTLSVersion = .tlsv12
            if let caFile = configuration.clientCAFile {
                let authorities = try NIOSSLCertificate.fromPEMBytes(try pem(2, caFile))
                guard !authorities.isEmpty else { throw LoadError(description: "\(caFile): no PEM certificate in it") }
                tls.trustRoots = .certificates(authorities)
                tls.certificateVerification = .noHostnameVerification
            }
            return try NIOSSLContext(configuration: tls)
        } catch let error as LoadError {
            throw error
        } catch {
            throw LoadError(description: "\(configuration.certFile) / \(configuration.keyFile): \(error)")
        }
    }
}
