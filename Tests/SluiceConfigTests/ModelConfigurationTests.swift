import Testing
@testable import SluiceConfig
import SluiceCore

@Suite struct ModelConfigurationTests {
    static func config(_ models: String) -> String {
        ConfigValidationTests.valid.replacingOccurrences(of: "pools:\n", with: """
        pools:
          - name: llama-v2
            match: { paths: ["/v1/chat/completions"] }
            replicas: ["127.0.0.1:9003"]

        """) + "\n" + models
    }

    func issues(_ yaml: String) -> [String] {
        do {
            _ = try GatewayConfiguration.decode(yaml: yaml)
            return []
        } catch {
            return error.issues.map { "\($0.path)\($0.line.map { " (line \($0))" } ?? ""): \($0.message)" }
        }
    }

    @Test func modelsAreReadWithVersionsAliasesAndStickyKeys() throws {
        let config = try GatewayConfiguration.decode(yaml: Self.config("""
        models:
          - name: llama-3-8b
            aliases: [gpt-default]
            versions: [{ pool: chat, weight: 90 }, { pool: llama-v2, weight: 10 }]
            sticky: [header:X-Conversation, tenant]
          - name: small
            versions: [{ pool: chat }]
        """))
        #expect(config.models.count == 2)
        #expect(config.models[0].names == ["llama-3-8b", "gpt-default"])
        #expect(config.models[0].versions == [.init(pool: "chat", weight: 90), .init(pool: "llama-v2", weight: 10)])
        #expect(config.models[0].sticky == [.header("x-conversation"), .tenant])
        #expect(config.models[1].versions == [.init(pool: "chat", weight: 1)])
        #expect(config.models[1].sticky == [.header("x-session-id"), .tenant])
    }

    @Test func badModelsAreNamedByKeyPathAndLine() {
        let found = issues(Self.config("""
        models:
          - name: a
            versions: [{ pool: nope, weight: 1 }]
          - name: b
            aliases: [a]
            versions: [{ pool: chat, weight: 0 }, { pool: llama-v2, weight: 0 }]
          - name: c
            versions: [{ pool: chat, weight: -1 }]
            sticky: [cookie]
          - aliases: [d]
        """))
        let text = found.joined(separator: "\n")
        #expect(found.contains { $0.hasPrefix("models[0].versions[0].pool (line") && $0.contains("no pool is named \"nope\"") }, "\(text)")
        #expect(found.contains { $0.hasPrefix("models[1]") && $0.contains("\"a\" already names another model") }, "\(text)")
        #expect(found.contains { $0.hasPrefix("models[1].versions") && $0.contains("add up to zero") }, "\(text)")
        #expect(found.contains { $0.hasPrefix("models[2].versions[0].weight") }, "\(text)")
        #expect(found.contains { $0.hasPrefix("models[2].sticky[0]") && $0.contains("not a key source") }, "\(text)")
        #expect(found.contains { $0.hasPrefix("models[3]") && $0.contains("needs name") }, "\(text)")
    }

    @Test func reloadTakesNewWeightsAndRefusesNewShapes() throws {
        let running = try GatewayConfiguration.decode(yaml: Self.config("models: [{ name: m, versions: [{ pool: chat, weight: 90 }, { pool: llama-v2, weight: 10 }] }]"))
        let canary = try GatewayConfiguration.decode(yaml: Self.config("models: [{ name: m, versions: [{ pool: chat, weight: 50 }, { pool: llama-v2, weight: 50 }] }]"))
        let reshaped = try GatewayConfiguration.decode(yaml: Self.config("models: [{ name: m, aliases: [x], versions: [{ pool: chat, weight: 90 }, { pool: llama-v2, weight: 10 }] }]"))
        guard case .success(let plan) = ReloadPlan.make(running: running, new: canary) else { Issue.record("weights refused"); return }
        #expect(plan.weights == ["m": ["chat": 50, "llama-v2": 50]])
        #expect(plan.membership.isEmpty)
        guard case .failure(let error) = ReloadPlan.make(running: running, new: reshaped) else { Issue.record("new alias accepted"); return }
        #expect(error.issues.map(\.path) == ["models"])
        guard case .success(let same) = ReloadPlan.make(running: running, new: running) else { Issue.record("same refused"); return }
        #expect(same.weights.isEmpty)
    }
}
