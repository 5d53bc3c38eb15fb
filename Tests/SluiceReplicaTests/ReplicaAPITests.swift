import Foundation
import SluiceSimulation
import Testing
@testable import SluiceReplica

@Suite struct ReplicaAPITests {
    let api = ReplicaAPI(configuration: ReplicaConfiguration(id: "t"))

    func reply(_ path: Substring, _ body: String) -> ReplicaReply {
        api.reply(method: "POST", path: path, body: Array(body.utf8), metrics: { "" })
    }

    @Test func tokenizerIsWhitespaceThenFourCharacterPieces() {
        #expect(SimTokenizer.count("hello sluice") == 4)
        #expect(SimTokenizer.count("a  bb\nccccc") == 4)
        #expect(SimTokenizer.count("") == 0)
    }

    @Test func completionsAreDeterministicAndCountTokens() throws {
        let body = #"{"model":"m","max_tokens":3,"messages":[{"role":"user","content":"hello sluice"}]}"#
        guard case .json(200, let first, _) = reply("/v1/chat/completions", body),
              case .json(200, let second, _) = reply("/v1/chat/completions", body)
        else {
            Issue.record("expected JSON")
            return
        }
        #expect(first == second)
        let object = try JSONSerialization.jsonObject(with: Data(first.utf8)) as? [String: Any]
        let usage = object?["usage"] as? [String: Int]
        #expect(usage == ["prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7])
        // The answer is `SimReply`'s for the messages' contents, one per line: what the load
        // generator puts in the next turn's history.
        let message = ((object?["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String
        #expect(message == SimReply.text(prompt: "hello sluice", count: 3))
        let twoMessages = #"{"max_tokens":5,"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}]}"#
        guard case .json(200, let text, _) = reply("/v1/chat/completions", twoMessages) else {
            Issue.record("expected JSON")
            return
        }
        #expect(text.contains(SimReply.text(prompt: "be brief\nhi", count: 5)))
    }

    @Test func streamsOneEventPerTokenWithUsageWhenAsked() {
        let body = #"{"stream":true,"stream_options":{"include_usage":true},"max_tokens":4,"messages":[{"role":"user","content":"x"}]}"#
        guard case .stream(let events, _, _) = reply("/v1/chat/completions", body) else {
            Issue.record("expected a stream")
            return
        }
        #expect(events.count == 4)
        #expect(events.last?.contains(#""usage":{"prompt_tokens":1"#) == true)
        #expect(events.last?.hasSuffix("data: [DONE]") == true)
    }

    @Test func embeddingsAsFloatsAndBase64() throws {
        // Served as a batch on the replica's device: cost = base + per input × inputs.
        guard case .batch(.embeddings, let cost, .json(200, let floats, _)) = reply("/v1/embeddings", #"{"input":["a","b"],"dimensions":4}"#),
              case .batch(.embeddings, _, .json(200, let base64, _)) = reply("/v1/embeddings", #"{"input":"a","encoding_format":"base64","dimensions":4}"#)
        else {
            Issue.record("expected JSON")
            return
        }
        #expect(cost == .milliseconds(2) + .microseconds(500) * 2)
        let list = try JSONSerialization.jsonObject(with: Data(floats.utf8)) as? [String: Any]
        let data = list?["data"] as? [[String: Any]]
        #expect(data?.count == 2)
        let vector = data?.first?["embedding"] as? [Double]
        #expect(vector?.count == 4)
        let encoded = try JSONSerialization.jsonObject(with: Data(base64.utf8)) as? [String: Any]
        let text = ((encoded?["data"] as? [[String: Any]])?.first?["embedding"] as? String) ?? ""
        let bytes = Data(base64Encoded: text) ?? Data()
        #expect(bytes.count == 16)
        let decoded = (0..<4).map { index in
            Float(bitPattern: bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: index * 4, as: UInt32.self) }.littleEndian)
        }
        #expect(zip(decoded, vector ?? []).allSatisfy { abs(Double($0) - $1) < 1e-6 })
    }

    @Test func badRequestsGetOpenAIErrors() {
        guard case .json(400, let body, _) = reply("/v1/chat/completions", "not json") else {
            Issue.record("expected a 400")
            return
        }
        #expect(body.contains(#""code":"invalid_json""#))
    }
}
