import Testing
@testable import SluiceConfig

@Suite struct QueueConfigurationTests {
    static func config(_ queue: String) -> String {
        ConfigValidationTests.valid.replacingOccurrences(
            of: "    routing: { policy: round-robin }\n", with: "    routing: { policy: round-robin }\n    max_concurrent_per_replica: 4\n    queue: \(queue)\n")
    }

    @Test func fairnessIsByRequestUnlessTokensAreAskedFor() throws {
        #expect(try GatewayConfiguration.decode(yaml: Self.config("{ max: 8 }")).pools[0].queue.fairness == .requests)
        #expect(try GatewayConfiguration.decode(yaml: Self.config("{ max: 8, fairness: tokens }")).pools[0].queue.fairness == .tokens)
        do {
            _ = try GatewayConfiguration.decode(yaml: Self.config("{ fairness: bytes }"))
            Issue.record("accepted")
        } catch {
            #expect(error.issues.contains { $0.path == "pools[0].queue.fairness" }, "\(error.issues)")
        }
    }
}
