import Foundation
import SluiceConfig
import SluiceTesting
import Testing

/// The official `openai` Python package as a real client. `scripts/test.sh` installs it in a
/// virtualenv and sets SLUICE_PYTHON; without it this test fails and says how to fix that.
@Suite(.serialized) struct OpenAIClientTests {
    @Test func officialClientChatsStreamsAndEmbedsThroughSluice() async throws {
        // A tenant allowed one request a minute: the client's second call must be a RateLimitError.
        let keys = try AdmissionTests.keysFile(["sk-limited"])
        let tokenKeys = try AdmissionTests.keysFile(["sk-tokens"])
        defer { for path in [keys, tokenKeys] { try? FileManager.default.removeItem(atPath: path) } }
        try await GatewayHarness.run(configure: { config, _ in
            // And a tenant with 60 tokens a minute, 250 at once: two short streams pass, 240 more tokens do not.
            var tokens = AdmissionTests.tenant("tokens", keysFile: tokenKeys)
            tokens.limits.tokensPerMinute = 60
            tokens.limits.tokenBurst = 250
            config.limits.tenants = [AdmissionTests.tenant("limited", keysFile: keys, perMinute: 1, burst: 1), tokens]
        }) { h in
            let python = ProcessInfo.processInfo.environment["SLUICE_PYTHON"] ?? "python3"
            let script = URL(fileURLWithPath: #filePath)
                .deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("python/openai_client_check.py").path
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = [python, script, "http://127.0.0.1:\(h.data.port!)/v1"]
            let output = Pipe()
            process.standardOutput = output
            process.standardError = output
            try process.run()
            let data = await Task.detached { output.fileHandleForReading.readDataToEndOfFile() }.value
            process.waitUntilExit()
            let text = String(decoding: data, as: UTF8.self)
            if text.contains("No module named 'openai'") {
                Issue.record("the openai package is missing: run scripts/test.sh, or set SLUICE_PYTHON to a python with openai installed")
            }
            #expect(process.terminationStatus == 0, "\(text)")
            #expect(text.contains("stream ok"))
            #expect(text.contains("embeddings ok: 3 vectors"))
            #expect(text.contains("error ok: 431 headers_too_large"))
            #expect(text.contains("rate limit ok: 429 rate_limit_exceeded retry-after 60"))
            #expect(text.contains("token limit ok: 429"))
        }
    }
}
