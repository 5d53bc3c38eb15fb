import Foundation
import SluiceConfig
import SluiceCore
import SluiceLoad
import SluiceReplica
import SluiceSimulation
import Testing

/// `sluice-load` end to end: through the gateway to simulated replicas.
@Suite(.serialized) struct LoadGeneratorTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func engineReplica(_ id: String) -> ReplicaConfiguration {
        var configuration = ReplicaConfiguration(id: id)
        configuration.engine = EngineProfile(
            maxRunning: 8, maxBatchedTokens: 512, blockSize: 16, kvBlocks: 512,
            stepBase: .microseconds(600), decodePerSequence: .microseconds(6), prefillPerToken: .microseconds(5))
        return configuration
    }

    @Test func theSmokeScenarioThroughTheGatewayAddsUp() async throws {
        let text = try String(contentsOf: Self.repository.appendingPathComponent("loadtest/scenarios/smoke.yaml"), encoding: .utf8)
        let scenario = try LoadScenario.decode(yaml: text)
        try await GatewayHarness.run(
            replicas: [Self.engineReplica("r1"), Self.engineReplica("r2")],
            configure: { config, _ in config.pools[0].paths = ["/*"].compactMap(PathPattern.init) }
        ) { h in
            var settings = LoadRunSettings(scenario: scenario.name, plan: scenario.plan, mix: scenario.mix)
            settings.tenants = scenario.tenants
            settings.seed = scenario.seed
            settings.timeout = scenario.timeout
            settings.adminURL = "http://127.0.0.1:\(h.admin.port!)"
            let report = try await LoadRunner.run(settings, target: "http://127.0.0.1:\(h.data.port!)")
            let requests = report.requests
            // The gateway's pool, sampled each second: two replicas, both in rotation.
            #expect((report.gateway?.count ?? 0) >= 3)
            #expect(report.gateway?.allSatisfy { sample in
                guard let pool = sample.pools["chat"] else { return false }
                // No cap on this pool, so no queue to report.
                return pool.replicas == 2 && pool.available == 2 && pool.inFlight != nil && pool.queued == nil
            } == true)
            #expect(ReportChart.svg(report).contains("replicas in rotation"))
            // Exactly the plan: the same seed gives the same Poisson schedule.
            var schedule = ArrivalSchedule(plan: scenario.plan, generator: SplitMix64(seed: scenario.seed))
            var planned = 0
            while schedule.next() != nil { planned += 1 }
            #expect(requests.sent == planned && planned > 60)
            #expect(requests.sent == requests.completed + requests.failed)
            #expect(requests.completed == requests.byStatus.values.reduce(0, +))
            #expect(requests.failed == 0 && requests.errorResponses == 0 && requests.byStatus.keys.sorted() == ["200"])
            #expect(requests.byWorkload.values.reduce(0, +) == requests.sent)
            #expect(Set(requests.byWorkload.keys) == ["chat", "embeddings", "infer"])
            #expect(report.replicas.values.reduce(0, +) == requests.completed)
            #expect(Set(report.replicas.keys) == ["r1", "r2"])
            #expect(report.timeline.map(\.sent).reduce(0, +) == requests.sent)
            #expect(report.timeline.map(\.completed).reduce(0, +) == requests.completed)
            #expect((report.ttftMs?.count ?? 0) > 0 && (report.itlMs?.count ?? 0) > 0)
            #expect(report.connections.requestsThatWaited == 0)
            try Self.validate(report)
            #expect(ReportChart.svg(report).hasPrefix("<svg"))
        }
    }

    /// Coordinated omission: the replica answers nothing faster than 1 s during the run's second
    /// second. A closed-loop client would send little then and report a small p99; this one keeps
    /// sending on schedule, so a third of its requests show the stall.
    @Test func aStallMidRunShowsInTheP99() async throws {
        var replica = ReplicaConfiguration(id: "r1")
        replica.timeToFirstToken = .milliseconds(1)
        replica.interTokenDelay = .zero
        try await GatewayHarness.run(replicas: [replica]) { h in
            var chat = Workload.Chat()
            chat.streamFraction = 0
            chat.maxTokens = 1
            chat.systemPromptWords = 5
            var settings = LoadRunSettings(
                scenario: "stall",
                plan: ArrivalPlan(phases: [.init(shape: .constant(rate: 100), duration: .seconds(3), process: .uniform)]),
                mix: [.init(weight: 1, workload: .chat(chat))])
            settings.timeout = .seconds(10)
            let server = h.replicas[0]
            let stall = Task {
                try await Task.sleep(for: .seconds(1))
                var faults = server.faults
                faults.extraLatency = .seconds(1)
                server.faults = faults
                try await Task.sleep(for: .seconds(1))
                faults.extraLatency = .zero
                server.faults = faults
            }
            let report = try await LoadRunner.run(settings, target: "http://127.0.0.1:\(h.data.port!)")
            try await stall.value
            #expect(abs(report.requests.sent - 300) <= 1)
            #expect(report.requests.completed == report.requests.sent)
            #expect(report.latencyMs.p99 >= 900, "p99 \(report.latencyMs.p99) ms")
            #expect(report.latencyMs.p50 < 100)
            // The requests planned in the stalled second were still sent in it.
            let stalled = report.timeline.first { $0.second == 1 }
            #expect(abs((stalled?.sent ?? 0) - 100) <= 2)
            #expect((stalled?.p50Ms ?? 0) >= 900)
            try Self.validate(report)
        }
    }

    /// Stopped early (Ctrl-C in the demo): sending stops, and every request sent is still
    /// accounted for, answered or failed as "stopped".
    @Test func aRunStoppedEarlyStillAddsUp() async throws {
        var replica = ReplicaConfiguration(id: "r1")
        replica.timeToFirstToken = .milliseconds(1)
        replica.interTokenDelay = .milliseconds(200)
        try await GatewayHarness.run(replicas: [replica]) { h in
            var chat = Workload.Chat()
            chat.streamFraction = 1
            chat.maxTokens = 20  // 4 s per request: some are in flight at the stop
            let settings = LoadRunSettings(
                scenario: "stopped",
                plan: ArrivalPlan(phases: [.init(shape: .constant(rate: 50), duration: .seconds(30), process: .uniform)]),
                mix: [.init(weight: 1, workload: .chat(chat))])
            let started = ContinuousClock.now
            let report = try await LoadRunner.run(settings, target: "http://127.0.0.1:\(h.data.port!)", shouldStop: {
                ContinuousClock.now - started > .seconds(1)
            })
            #expect(ContinuousClock.now - started < .seconds(10))
            #expect(report.requests.sent > 40 && report.requests.sent < 300)
            #expect(report.requests.sent == report.requests.completed + report.requests.failed)
            #expect((report.requests.failures["stopped"] ?? 0) > 0)
        }
    }

    /// Checks the report against `loadtest/report.schema.json` with Python's `jsonschema`
    /// (`scripts/test.sh` installs it in its virtualenv and sets SLUICE_PYTHON).
    static func validate(_ report: LoadReport) throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-report-\(UUID().uuidString).json")
        try report.json().write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let python = ProcessInfo.processInfo.environment["SLUICE_PYTHON"] ?? "python3"
        let schema = repository.appendingPathComponent("loadtest/report.schema.json").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [python, "-c", """
            import json, sys, jsonschema
            jsonschema.validate(json.load(open(sys.argv[2])), json.load(open(sys.argv[1])))
            print("schema ok")
            """, schema, file.path]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        if text.contains("No module named 'jsonschema'") {
            Issue.record("the jsonschema package is missing: run scripts/test.sh, or set SLUICE_PYTHON to a python with jsonschema installed")
        }
        #expect(text.contains("schema ok"), "\(text)")
    }
}
