import ArgumentParser

@main
struct SluiceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sluice",
        abstract: "An inference gateway: routes, batches, limits and watches requests to model-server replicas.",
        subcommands: [ServeCommand.self, CheckCommand.self, DemoCommand.self, RelayCommand.self, BenchRoutingCommand.self, BenchLimitsCommand.self]
    )
}
