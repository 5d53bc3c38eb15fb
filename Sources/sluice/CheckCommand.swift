import ArgumentParser
import Foundation
import SluiceConfig

/// Reads and validates a config file, printing every issue with its key path and line.
func loadConfiguration(path: String) throws -> GatewayConfiguration {
    let text: String
    do {
        text = try String(contentsOfFile: path, encoding: .utf8)
    } catch {
        throw ValidationError("cannot read \(path): \(error.localizedDescription)")
    }
    do {
        return try GatewayConfiguration.decode(yaml: text)
    } catch {
        var message = "\(path): \(error.issues.count) problem\(error.issues.count == 1 ? "" : "s")\n"
        for issue in error.issues { message += "  \(issue)\n" }
        FileHandle.standardError.write(Data(message.utf8))
        throw ExitCode(1)
    }
}

struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check", abstract: "Validate a config file without starting anything.")

    @Option(name: .long, help: "The YAML config file.")
    var config: String

    func run() throws {
        let configuration = try loadConfiguration(path: config)
        let replicas = configuration.pools.reduce(0) { $0 + $1.replicas.count }
        print("\(config): OK (\(configuration.pools.count) pool\(configuration.pools.count == 1 ? "" : "s"), \(replicas) replica\(replicas == 1 ? "" : "s"), listen \(configuration.listen), admin \(configuration.admin.listen))")
    }
}
