import Foundation
import SluiceConfig

extension Gateway {
    /// What `serve` would refuse in a configuration that validates: files and names read at
    /// start (a tenant's `keys_file`, its key variables, the limits backend's address), so
    /// `sluice check` catches them before a deploy. Empty when the gateway would start.
    public static func startProblems(
        _ configuration: GatewayConfiguration, environment: [String: String] = ProcessInfo.processInfo.environment
    ) -> [String] {
        var problems: [String] = []
        if configuration.limits.admissionEnabled {
            do {
                _ = try Admission(configuration.limits, environment: environment)
            } catch {
                problems.append("\(error)")
            }
        }
        if let tls = configuration.tls {
            do {
                _ = try ListenerCertificates(tls)
            } catch {
                problems.append("tls: \(error)")
            }
        }
        if let chatops = configuration.admin.chatops {
            for name in [chatops.signingSecretEnv, chatops.mattermostTokenEnv].compactMap({ $0 }) where environment[name]?.isEmpty ?? true {
                problems.append("admin.chatops: the environment variable \(name) is not set")
            }
        }
        for pool in configuration.pools {
            if let provider = pool.provider {
                do {
                    _ = try ProviderCredentials(pool, provider: provider, environment: environment)
                } catch {
                    problems.append("\(error)")
                }
            }
            do {
                _ = try UpstreamSettings(pool)
            } catch {
                problems.append("pool \(pool.name): \(error)")
            }
        }
        return problems
    }
}
