import Foundation
import SluiceCore
import SluiceSimulation
import Testing
@testable import SluiceConfig

@Suite struct ConfigValidationTests {
    static let valid = """
    listen: "127.0.0.1:8080"
    admin:
      listen: "127.0.0.1:9090"
      token_env: SLUICE_ADMIN_TOKEN      # bearer token is read from this environment variable
    pools:
      - name: chat
        match: { paths: ["/v1/chat/completions", "/v1/completions"], models: ["*"] }
        replicas: ["127.0.0.1:9001", "127.0.0.1:9002"]
        routing: { policy: round-robin }
        timeouts: { connect: 2s, response_header: 60s, idle: 300s }
    limits: { max_header_bytes: 16384, max_body_bytes: 8388608 }
    """

    func issues(_ yaml: String) -> [ConfigIssue] {
        do {
            _ = try GatewayConfiguration.decode(yaml: yaml)
            return []
        } catch {
            return error.issues
        }
    }

    @Test func aDiscoveredPoolNeedsNoReplicasAndOneSource() throws {
        func pool(_ discovery: String) -> String {
            Self.valid.replacingOccurrences(of: "    replicas: [\"127.0.0.1:9001\", \"127.0.0.1:9002\"]", with: "    discovery: \(discovery)")
        }
        let dns = try GatewayConfiguration.decode(yaml: pool("{ dns: \"model.ns.svc.cluster.local:8000\", interval: 2s, resolver: \"127.0.0.1:5353\" }"))
        #expect(dns.pools[0].replicas.isEmpty)
        #expect(dns.pools[0].discovery?.source == .dns(name: "model.ns.svc.cluster.local", port: 8000))
        #expect(dns.pools[0].discovery?.interval == .seconds(2))
        #expect(dns.pools[0].discovery?.resolver == ReplicaID(host: "127.0.0.1", port: 5353))
        #expect(try GatewayConfiguration.decode(yaml: pool("{ srv: _http._tcp.model.ns.svc.cluster.local }")).pools[0].discovery?.source == .srv(name: "_http._tcp.model.ns.svc.cluster.local"))
        #expect(issues(pool("{ dns: \"model:8000\", file: /etc/replicas }")).first?.message == "one of dns, srv or file")
        #expect(issues(pool("{ interval: 5s }")).first?.message == "needs dns, srv or file")
        #expect(issues(pool("{ file: replicas.txt }")).first?.message == "must be an absolute path")
        #expect(issues(pool("{ dns: model }")).first?.message.contains("is not a name:port") == true)
        #expect(issues(Self.valid.replacingOccurrences(of: "    replicas: [\"127.0.0.1:9001\", \"127.0.0.1:9002\"]\n", with: "")).first?.message.contains("missing required key \"replicas\" (or \"discovery\")") == true)
    }

    @Test func aKeyWrittenTwiceIsReportedAtItsSecondLine() {
        let found = issues(Self.valid.replacingOccurrences(of: "listen: \"127.0.0.1:8080\"\n", with: "listen: \"127.0.0.1:8080\"\nworkers: 2\nlisten: \"127.0.0.1:8081\"\n"))
        #expect(found.count == 1)
        #expect(found.first?.line == 3)
        #expect(found.first?.message.contains("duplicate key \"listen\" (first at line 1)") == true)
    }

    @Test func theDocumentedShapeDecodes() throws {
        let config = try GatewayConfiguration.decode(yaml: Self.valid)
        #expect(config.listen == ReplicaID(host: "127.0.0.1", port: 8080))
        #expect(config.admin.tokenEnv == "SLUICE_ADMIN_TOKEN")
        #expect(config.pools.count == 1)
        let pool = config.pools[0]
        #expect(pool.replicas == [ReplicaID(host: "127.0.0.1", port: 9001), ReplicaID(host: "127.0.0.1", port: 9002)])
        #expect(pool.models == ["*"])
        #expect(pool.policy == .roundRobin)
        #expect(pool.timeouts.connect == .seconds(2))
        #expect(pool.timeouts.responseHeader == .seconds(60))
        #expect(pool.timeouts.idle == .seconds(300))
        #expect(config.limits.maxHeaderBytes == 16384)
        #expect(config.limits.maxBodyBytes == 8_388_608)
    }

    @Test func workersAndPinning() throws {
        let config = try GatewayConfiguration.decode(yaml: "workers: 3\npin_workers: true\n" + Self.valid)
        #expect(config.workers == 3 && config.pinWorkers)
        #expect(try GatewayConfiguration.decode(yaml: Self.valid).pinWorkers == false)
        #expect(issues("pin_workers: sometimes\n" + Self.valid).map(\.path) == ["pin_workers"])
    }

    @Test func routingSettings() throws {
        let yaml = Self.valid.replacingOccurrences(
            of: "routing: { policy: round-robin }",
            with: #"routing: { policy: consistent-hash, key: ["header:X-Session-Id", "tenant", "prefix"], prefix_tokens: 64, load_factor: 1.5, max_queue: 4, scrape: { path: /m, interval: 500ms } }"#)
        let routing = try GatewayConfiguration.decode(yaml: yaml).pools[0].routing
        #expect(routing.policy == .consistentHash && routing.key == [.header("x-session-id"), .tenant, .prefix])
        #expect(routing.prefixTokens == 64 && routing.loadFactor == 1.5 && routing.maxQueue == 4)
        #expect(routing.scrapePath == "/m" && routing.scrapeInterval == .milliseconds(500))
        // cache-aware defaults its key to the prompt prefix; consistent-hash needs one.
        let cache = Self.valid.replacingOccurrences(of: "routing: { policy: round-robin }", with: "routing: { policy: cache-aware }")
        #expect(try GatewayConfiguration.decode(yaml: cache).pools[0].routing.key == [.prefix])
        let noKey = Self.valid.replacingOccurrences(of: "routing: { policy: round-robin }", with: "routing: { policy: consistent-hash }")
        #expect(issues(noKey).first?.message.contains("consistent-hash needs key") == true)
        let badKey = Self.valid.replacingOccurrences(of: "routing: { policy: round-robin }", with: #"routing: { policy: consistent-hash, key: ["cookie:x"], load_factor: 0.5 }"#)
        #expect(issues(badKey).map(\.path).sorted() == ["pools[0].routing.key[0]", "pools[0].routing.load_factor"])
        // Cache-aware's own settings, and each refused where it means nothing or is malformed.
        let tuned = Self.valid.replacingOccurrences(
            of: "routing: { policy: round-robin }",
            with: #"routing: { policy: cache-aware, slots: 16, max_pending_prefill: 128KiB, move_after: 5s, match_threshold: 0.7, prompt_index_blocks: 4096, placement: ring, shared: "redis://127.0.0.1:6379" }"#)
        let cacheAware = try GatewayConfiguration.decode(yaml: tuned).pools[0].routing
        #expect(cacheAware.slots == 16 && cacheAware.maxPendingPrefill == 131_072 && cacheAware.moveAfter == .seconds(5))
        #expect(cacheAware.matchThreshold == 0.7 && cacheAware.promptIndexBlocks == 4_096 && cacheAware.placement == .ring)
        #expect(cacheAware.shared == ReplicaID(host: "127.0.0.1", port: 6379))
        let misplaced = Self.valid.replacingOccurrences(
            of: "routing: { policy: round-robin }",
            with: #"routing: { policy: least-queue, move_after: 5s, shared: "redis://r:1" }"#)
        #expect(issues(misplaced).map(\.path).sorted() == ["pools[0].routing.move_after", "pools[0].routing.shared"])
        let malformed = Self.valid.replacingOccurrences(
            of: "routing: { policy: round-robin }",
            with: #"routing: { policy: cache-aware, placement: nearest, shared: "http://r:1", match_threshold: 2 }"#)
        #expect(issues(malformed).map(\.path).sorted() == ["pools[0].routing.match_threshold", "pools[0].routing.placement", "pools[0].routing.shared"])
    }

    @Test func queueAndConcurrencyCap() throws {
        let capped = Self.valid.replacingOccurrences(
            of: "routing: { policy: round-robin }",
            with: "routing: { policy: round-robin }\n    queue: { max: 32, timeout: 750ms }\n    max_concurrent_per_replica: 64")
        let pool = try GatewayConfiguration.decode(yaml: capped).pools[0]
        #expect(pool.maxConcurrentPerReplica == 64 && pool.queue.max == 32 && pool.queue.timeout == .milliseconds(750))
        // Without the cap there is no queue, and nothing waits.
        #expect(try GatewayConfiguration.decode(yaml: Self.valid).pools[0].maxConcurrentPerReplica == nil)
        let capOnly = Self.valid.replacingOccurrences(
            of: "routing: { policy: round-robin }", with: "routing: { policy: round-robin }\n    max_concurrent_per_replica: 8")
        let defaults = try GatewayConfiguration.decode(yaml: capOnly).pools[0].queue
        #expect(defaults.max == 256 && defaults.timeout == .seconds(5))
        let queueOnly = Self.valid.replacingOccurrences(
            of: "routing: { policy: round-robin }", with: "routing: { policy: round-robin }\n    queue: { max: 4 }")
        let problem = issues(queueOnly).first
        #expect(problem?.path == "pools[0].queue" && problem?.message.contains("needs max_concurrent_per_replica") == true)
        let bad = Self.valid.replacingOccurrences(
            of: "routing: { policy: round-robin }",
            with: "routing: { policy: round-robin }\n    max_concurrent_per_replica: 0\n    queue: { max: -1, timeout: 5 }")
        #expect(issues(bad).map(\.path).sorted() == ["pools[0].max_concurrent_per_replica", "pools[0].queue.max", "pools[0].queue.timeout"])
    }

    @Test func scalingAndPublish() throws {
        let scaled = Self.valid.replacingOccurrences(
            of: "routing: { policy: round-robin }",
            with: "routing: { policy: round-robin }\n    scaling: { signal: ttft, target_p95: 800ms, min_replicas: 1, max_replicas: 16, stable_window: 60s, panic_window: 6s, panic_threshold: 2.0, tolerance: 0.1, scale_in_ratio: 0.6, scale_down_delay: 300s, max_step_up: 4, tick: 2s }")
            + "\npublish:\n  webhook: { url: \"http://127.0.0.1:7000/hook\", format: slack }\n"
        let config = try GatewayConfiguration.decode(yaml: scaled)
        let scaling = try #require(config.pools[0].scaling)
        #expect(scaling.signal == .ttft && scaling.targetP95 == .milliseconds(800) && scaling.maxStepUp == 4 && scaling.tick == .seconds(2))
        #expect(scaling.policy.target == 800_000_000 && scaling.policy.scaleDownDelay == 300_000_000_000)
        #expect(config.publish.webhook == .init(host: "127.0.0.1", port: 7000, path: "/hook", format: .slack))
        func problems(_ scalingText: String, publish: String = "") -> [String] {
            issues(Self.valid.replacingOccurrences(of: "routing: { policy: round-robin }", with: "routing: { policy: round-robin }\n    scaling: \(scalingText)") + publish)
                .map { "\($0.path): \($0.message)" }
        }
        #expect(problems("{ signal: ttft }").first?.contains("missing required key \"target_p95\"") == true)
        #expect(problems("{ target_p95: 1s, signal: tokens }").first?.hasPrefix("pools[0].scaling.signal") == true)
        #expect(problems("{ target_p95: 1s, shared: redis://127.0.0.1:6379 }").isEmpty)
        #expect(problems("{ target_p95: 1s, shared: 127.0.0.1:6379 }").first?.contains("must be redis://host:port") == true)
        #expect(problems("{ target_p95: 1s, min_replicas: 5, max_replicas: 2 }").first?.contains("above max_replicas") == true)
        #expect(problems("{ target_p95: 1s, panic_window: 2m }").first?.contains("must not be longer than the stable window") == true)
        #expect(problems("{ target_p95: 1s, tick: 10s }").first?.contains("must not be longer than the panic window") == true)
        #expect(problems("{ target_p95: 1s }", publish: "\npublish: { webhook: { url: \"ftp://hooks.example/x\" } }\n").first?.contains("not an http:// or https:// URL") == true)
        #expect(problems("{ target_p95: 1s }", publish: "\npublish: { webhook: { url: \"http://hooks:99999/x\" } }\n").first?.contains("needs a host") == true)
    }

    @Test func anHTTPSWebhookWithItsCAFile() throws {
        func decode(_ webhook: String) throws(ConfigError) -> GatewayConfiguration {
            try GatewayConfiguration.decode(yaml: Self.valid + "\npublish:\n  webhook: \(webhook)\n")
        }
        // The scheme's port when none is given.
        let slack = try decode(#"{ url: "https://hooks.slack.com/services/T/B/x", format: slack }"#).publish.webhook
        #expect(slack == .init(host: "hooks.slack.com", port: 443, path: "/services/T/B/x", format: .slack, https: true))
        #expect(slack?.url == "https://hooks.slack.com:443/services/T/B/x")
        #expect(try decode(#"{ url: "http://[::1]/hook" }"#).publish.webhook == .init(host: "::1", port: 80, path: "/hook", format: .json))

        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sluice-ca-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let ca = directory.appendingPathComponent("ca.pem").path
        try "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".write(toFile: ca, atomically: true, encoding: .utf8)
        let notPEM = directory.appendingPathComponent("ca.txt").path
        try "not a certificate".write(toFile: notPEM, atomically: true, encoding: .utf8)
        let hook = try decode(#"{ url: "https://10.0.0.7:8443/scale", ca_file: "\#(ca)" }"#).publish.webhook
        #expect(hook == .init(host: "10.0.0.7", port: 8443, path: "/scale", format: .json, https: true, caFile: ca))

        func problems(_ webhook: String) -> [String] {
            issues(Self.valid + "\npublish:\n  webhook: \(webhook)\n").map { "\($0.path): \($0.message)" }
        }
        let missing = directory.appendingPathComponent("gone.pem").path
        #expect(problems(#"{ url: "https://10.0.0.7/scale", ca_file: "\#(missing)" }"#) == ["publish.webhook.ca_file: cannot read \"\(missing)\""])
        #expect(problems(#"{ url: "https://10.0.0.7/scale", ca_file: "\#(notPEM)" }"#) == ["publish.webhook.ca_file: \"\(notPEM)\" holds no PEM certificate"])
        #expect(problems(#"{ url: "http://10.0.0.7/scale", ca_file: "\#(ca)" }"#) == ["publish.webhook.ca_file: a CA file needs an https:// url"])
    }

    @Test func batching() throws {
        let batched = Self.valid.replacingOccurrences(
            of: "routing: { policy: round-robin }",
            with: "routing: { policy: round-robin }\n    batching: { max_batch: 64, max_wait: 2ms, target_latency: 20ms }")
        let batching = try #require(try GatewayConfiguration.decode(yaml: batched).pools[0].batching)
        #expect(batching == BatchingConfiguration(maxBatch: 64, maxWait: .milliseconds(2), targetLatency: .milliseconds(20)))
        #expect(batching.policy.maxWait == 2_000_000)
        let bad = Self.valid.replacingOccurrences(
            of: "routing: { policy: round-robin }",
            with: "routing: { policy: round-robin }\n    batching: { max_batch: 0, max_wait: 5, size: 3 }")
        #expect(issues(bad).map(\.path).sorted() == ["pools[0].batching.max_batch", "pools[0].batching.max_wait", "pools[0].batching.size"])
    }

    @Test func badHostPortNamesKeyPathAndLine() {
        let yaml = Self.valid.replacingOccurrences(of: "\"127.0.0.1:9002\"", with: "\"127.0.0.1:99999\"")
        #expect(issues(yaml).map(\.description) == [#"pools[0].replicas[1]: "127.0.0.1:99999" is not a host:port (line 8)"#])
    }

    @Test func unknownKeyIsAnErrorWithAHint() {
        let yaml = Self.valid.replacingOccurrences(of: "    routing: { policy: round-robin }", with: "    routnig: { policy: round-robin }")
        let found = issues(yaml)
        #expect(found.count == 1)
        #expect(found.first?.path == "pools[0].routnig")
        #expect(found.first?.line == 9)
        #expect(found.first?.message.contains(#"did you mean "routing"?"#) == true)
    }

    @Test func durationsNeedUnits() {
        let yaml = Self.valid.replacingOccurrences(of: "connect: 2s", with: "connect: 2")
        #expect(issues(yaml).map(\.description) == [#"pools[0].timeouts.connect: "2" is not a duration (use a unit: 250ms, 2s, 5m) (line 10)"#])
    }

    @Test func missingRequiredKey() {
        let yaml = Self.valid.replacingOccurrences(of: "listen: \"127.0.0.1:8080\"\n", with: "")
        #expect(issues(yaml).map(\.description) == [#"missing required key "listen" (line 1)"#])
    }

    @Test func wrongType() {
        let yaml = Self.valid.replacingOccurrences(of: #"replicas: ["127.0.0.1:9001", "127.0.0.1:9002"]"#, with: #"replicas: "127.0.0.1:9001""#)
        #expect(issues(yaml).map(\.description) == ["pools[0].replicas: expected a list (line 8)"])
    }

    @Test func unknownPolicy() {
        let yaml = Self.valid.replacingOccurrences(of: "policy: round-robin", with: "policy: fastest")
        #expect(issues(yaml).map(\.description) == [#"pools[0].routing.policy: "fastest" is not one of round-robin, random, least-queue, consistent-hash, cache-aware (line 9)"#])
    }

    @Test func duplicatePoolNamesAndReplicas() {
        let yaml = """
        listen: "127.0.0.1:8080"
        admin: { listen: "127.0.0.1:9090" }
        pools:
          - { name: chat, match: { paths: ["/a"] }, replicas: ["127.0.0.1:1", "127.0.0.1:1"] }
          - { name: chat, match: { paths: ["/b"] }, replicas: [] }
        """
        #expect(issues(yaml).map(\.description) == [
            "pools[0].replicas[1]: duplicate replica 127.0.0.1:1 (line 4)",
            #"pools[1]: duplicate pool name "chat" (line 5)"#,
        ])
    }

    @Test func outOfRangeNumbers() {
        let yaml = Self.valid.replacingOccurrences(of: "max_header_bytes: 16384", with: "max_header_bytes: 12")
        #expect(issues(yaml).map(\.description) == ["limits.max_header_bytes: 12 bytes is out of range 1024...1048576 (line 11)"])
    }

    @Test func badPathPattern() {
        let yaml = Self.valid.replacingOccurrences(of: #""/v1/completions""#, with: #""v1/*/x""#)
        #expect(issues(yaml).first?.description == #"pools[0].match.paths[1]: "v1/*/x" is not a path pattern (start with /; a * may only end it, after a /) (line 7)"#)
    }

    @Test func syntaxErrorsCarryALine() {
        let found = issues("listen: \"127.0.0.1:8080\"\npools: [\n  - a\n")
        #expect(found.count == 1)
        #expect(found.first?.message.hasPrefix("not valid YAML") == true)
        #expect(found.first?.line != nil)
    }

    @Test func everyIssueIsReportedNotJustTheFirst() {
        let yaml = Self.valid
            .replacingOccurrences(of: "connect: 2s", with: "connect: soon")
            .replacingOccurrences(of: "\"127.0.0.1:9090\"", with: "\"nowhere\"")
        #expect(issues(yaml).count == 2)
    }

    @Test func scalarParsers() {
        #expect(ConfigValues.duration("250ms") == .milliseconds(250))
        #expect(ConfigValues.duration("1.5s") == .milliseconds(1500))
        #expect(ConfigValues.duration("5m") == .seconds(300))
        #expect(ConfigValues.duration("-1s") == nil)
        #expect(ConfigValues.byteSize("8MiB") == 8 << 20)
        #expect(ConfigValues.byteSize("16 KiB") == 16 << 10)
        #expect(ConfigValues.hostPort("[::1]:80") == ReplicaID(host: "::1", port: 80))
        #expect(ConfigValues.hostPort("::1:80") == nil)
        #expect(ConfigValues.hostPort("host:0") == nil)
        #expect(ConfigValues.hostPort("host:0", allowZeroPort: true) == ReplicaID(host: "host", port: 0))
    }
}

@Suite struct ReplicaProfileTests {
    @Test func theShippedProfilesDecode() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        for name in ["llm-8b-a100", "fast"] {
            let text = try String(contentsOf: root.appendingPathComponent("configs/replicas/\(name).yaml"), encoding: .utf8)
            let profile = try ReplicaProfile.decode(yaml: text)
            #expect(profile.engine != nil, "\(name)")
        }
        let gpu = try ReplicaProfile.decode(yaml: String(contentsOf: root.appendingPathComponent("configs/replicas/llm-8b-a100.yaml"), encoding: .utf8))
        #expect(gpu.engine == EngineProfile(
            maxRunning: 256, maxBatchedTokens: 2048, blockSize: 16, kvBlocks: 27_793,
            stepBase: .milliseconds(12), decodePerSequence: .microseconds(120), prefillPerToken: .microseconds(100)))
        #expect(gpu.timeScale == 1 && gpu.embeddingDimensions == 768)
        // The demo's built-in profile is fast.yaml.
        #expect(try ReplicaProfile.decode(yaml: String(contentsOf: root.appendingPathComponent("configs/replicas/fast.yaml"), encoding: .utf8)) == .fast)
    }

    @Test func problemsNameKeyPathAndLine() {
        func issues(_ yaml: String) -> [ConfigIssue] {
            do {
                _ = try ReplicaProfile.decode(yaml: yaml)
                return []
            } catch {
                return error.issues
            }
        }
        let bad = issues("model: m\nengine:\n  max_running: 0\n  step_base: 12\n  kv_blok: 5\ntime_scale: fast\n")
        #expect(bad.map(\.path).sorted() == ["engine.kv_blok", "engine.max_running", "engine.step_base", "time_scale"])
        #expect(bad.first { $0.path == "engine.step_base" }?.line == 4)
        #expect(bad.first { $0.path == "engine.kv_blok" }?.message.contains("did you mean \"kv_blocks\"") == true)
        #expect(issues("engine:\n  max_running: 64\n  max_batched_tokens: 32\n").first?.message.contains("must be at least max_running") == true)
        #expect(issues("").first?.message == "the file is empty")
    }
}

@Suite struct LoadScenarioTests {
    @Test func everyShippedScenarioDecodes() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let directory = root.appendingPathComponent("loadtest/scenarios")
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".yaml") }.sorted()
        #expect(names == ["chat-anonymous.yaml", "chat-documents-anonymous.yaml", "chat-documents.yaml", "chat-many-prompts.yaml", "chat-steady.yaml", "chat-surge.yaml", "diurnal.yaml", "embeddings-burst.yaml", "embeddings-sweep.yaml", "infer-sweep.yaml", "mixed-tenants.yaml", "smoke.yaml"])
        for name in names {
            let text = try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
            let scenario = try LoadScenario.decode(yaml: text)
            #expect(!scenario.plan.phases.isEmpty && !scenario.mix.isEmpty, "\(name)")
            #expect(text.hasPrefix("# "), "\(name) says in a comment what it models")
        }
        let surge = try LoadScenario.decode(yaml: String(contentsOf: directory.appendingPathComponent("chat-surge.yaml"), encoding: .utf8))
        #expect(surge.plan.phases.map(\.shape) == [.constant(rate: 27), .constant(rate: 100), .constant(rate: 27)])
        // Each -anonymous scenario is its named twin without the session header, and nothing else.
        for (named, unnamed) in [("chat-steady", "chat-anonymous"), ("chat-documents", "chat-documents-anonymous")] {
            try Self.expectTwins(directory.appendingPathComponent(named + ".yaml"), directory.appendingPathComponent(unnamed + ".yaml"))
        }
    }

    static func expectTwins(_ namedFile: URL, _ anonymousFile: URL) throws {
        let steady = try LoadScenario.decode(yaml: String(contentsOf: namedFile, encoding: .utf8))
        let anonymous = try LoadScenario.decode(yaml: String(contentsOf: anonymousFile, encoding: .utf8))
        guard case .chat(let named) = steady.mix[0].workload, case .chat(let unnamed) = anonymous.mix[0].workload else {
            Issue.record("not chat")
            return
        }
        var expected = named
        expected.sessionHeader = false
        #expect(unnamed == expected && anonymous.plan == steady.plan && anonymous.seed == steady.seed)
        var withHeader = RequestGenerator(mix: steady.mix, generator: SplitMix64(seed: 1))
        var withoutHeader = RequestGenerator(mix: anonymous.mix, generator: SplitMix64(seed: 1))
        let a = withHeader.next()
        let b = withoutHeader.next()
        #expect(a.headers.contains { $0.0 == "x-session-id" } && !b.headers.contains { $0.0 == "x-session-id" })
        #expect(a.body == b.body)
    }

    @Test func problemsNameKeyPathAndLine() {
        func issues(_ yaml: String) -> [ConfigIssue] {
            do {
                _ = try LoadScenario.decode(yaml: yaml)
                return []
            } catch {
                return error.issues
            }
        }
        let yaml = """
            name: x
            phases:
              - duration: 10
                rate: 5
              - duration: 5s
                rate: 5
                ramp: { from: 1, to: 2 }
            workloads:
              - weight: 1
                chat: { userz: 3 }
            """
        let found = issues(yaml)
        #expect(found.map(\.path) == ["phases[0].duration", "phases[1]", "workloads[0].chat.userz"])
        #expect(found.map(\.line) == [3, 5, 10])
        #expect(issues("phases:\n  - { duration: 1s, rate: 1 }\n").first?.message == "missing required key \"workloads\"")
    }
}
