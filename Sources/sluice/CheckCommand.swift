import ArgumentParser
import Foundation
import SluiceConfig
import SluiceGateway

/// Reads and validates a YAML file with `decode`, printing every issue with its key path and
/// line (and exiting 1) when it does not validate.
func loadFile<T>(_ path: String, _ decode: (String) throws(ConfigError) -> T) throws -> T {
    let text: String
    do {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        guard let decoded = String(data: data, encoding: .utf8) else {
            FileHandle.standardError.write(Data("\(path): not a YAML file (not UTF-8 text)\n".utf8))
            throw ExitCode(1)
        }
        text = decoded
    } catch let exit as ExitCode {
        throw exit
    } catch {
        FileHandle.standardError.write(Data("cannot read \(path): \(error.localizedDescription)\n".utf8))
        throw ExitCode(1)
    }
    do {
        return try decode(text)
    } catch {
        FileHandle.standardError.write(Data(error.report(file: path).utf8))
        throw ExitCode(1)
    }
}

func loadConfiguration(path: String) throws -> GatewayConfiguration {
    try loadFile(path) { text throws(ConfigError) in try GatewayConfiguration.decode(yaml: text) }
}

struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check", abstract: "Validate a gateway config or a replica profile without starting anything.")

    @Option(name: .long, help: "A gateway config file (YAML).")
    var config: String?

    @Option(name: .long, help: "A sluice-replica profile (configs/replicas/*.yaml).")
    var replicaProfile: String?

    func validate() throws {
        guard (config == nil) != (replicaProfile == nil) else {
            throw ValidationError("give --config or --replica-profile")
        }
    }

    func run() throws {
        if let config {
            let configuration = try loadConfiguration(path: config)
            let problems = Gateway.startProblems(configuration)
            if !problems.isEmpty {
                FileHandle.standardError.write(Data(("\(config): would not start\n" + problems.map { "  \($0)\n" }.joined()).utf8))
                throw ExitCode(1)
            }
            let replicas = configuration.pools.reduce(0) { $0 + $1.replicas.count }
            print("\(config): OK (\(configuration.pools.count) pool\(configuration.pools.count == 1 ? "" : "s"), \(replicas) replica\(replicas == 1 ? "" : "s"), listen \(configuration.listen), admin \(configuration.admin.listen))")
        } else if let path = replicaProfile {
            let profile = try loadReplicaProfile(path: path)
            let engine = profile.engine.map { "engine: \($0.maxRunning) running, \($0.kvBlocks) KV blocks of \($0.blockSize)" } ?? "fixed clock"
            print("\(path): OK (model \(profile.model), \(engine), time_scale \(profile.timeScale))")
        }
    }
}

func loadReplicaProfile(path: String) throws -> ReplicaProfile {
    try loadFile(path) { text throws(ConfigError) in try ReplicaProfile.decode(yaml: text) }
}
