import Testing
@testable import SluiceCore

@Suite struct ChatCommandTests {
    @Test func commandsAreParsed() throws {
        #expect(try ChatCommand.parse("status").get() == .status)
        #expect(try ChatCommand.parse("  SCALE ").get() == .scale)
        #expect(try ChatCommand.parse("").get() == .help)
        #expect(try ChatCommand.parse("drain 10.0.0.7:8000").get() == .drain(replica: "10.0.0.7:8000", pool: nil))
        #expect(try ChatCommand.parse("undrain 10.0.0.7:8000 chat").get() == .undrain(replica: "10.0.0.7:8000", pool: "chat"))
        #expect(try ChatCommand.parse("canary llama 15%").get() == .canary(model: "llama", percent: 15))
        #expect(try ChatCommand.parse("canary llama 2.5").get() == .canary(model: "llama", percent: 2.5))
        #expect(try ChatCommand.parse("limits acme").get() == .limits(tenant: "acme"))
    }

    @Test func badCommandsSayWhatIsExpected() {
        #expect(ChatCommand.parse("reboot now") == .failure(.unknown("reboot")))
        #expect(ChatCommand.parse("drain") == .failure(.usage("usage: drain <host:port> [pool]")))
        #expect(ChatCommand.parse("status please") == .failure(.usage("usage: status")))
        #expect(ChatCommand.parse("canary llama 120") == .failure(.usage("the canary's share is a percent from 0 to 100, not 120")))
        #expect(ChatCommand.parse("canary llama") == .failure(.usage("usage: canary <model> <percent>")))
        #expect("\(ChatCommandError.unknown("x"))".contains("drain <host:port>"))
    }

    @Test func aCanaryShareLeavesTheOtherVersionsTheirProportions() {
        #expect(ChatCommand.canaryWeights([90, 10], percent: 25) == [75, 25])
        #expect(ChatCommand.canaryWeights([2, 1, 5], percent: 40) == [40, 20, 40])
        #expect(ChatCommand.canaryWeights([0, 0, 1], percent: 10) == [45, 45, 10])
        #expect(ChatCommand.canaryWeights([1], percent: 10) == nil)
    }
}
