import Foundation
import SluiceTesting
import Testing

/// The official `openai` Python package as a real client. `scripts/test.sh` installs it in a
/// virtualenv and sets SLUICE_PYTHON; without it this test fails and says how to fix that.
@Suite(.serialized) struct OpenAIClientTests {
    @Test func officialClientChatsStreamsAndEmbedsThroughSluice() async throws {
        try await GatewayHarness.run { h in
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
        }
    }
}
