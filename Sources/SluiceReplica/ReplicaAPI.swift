import Foundation
import SluiceSimulation

/// What the simulator answers, decided from the request alone (no I/O), so it is easy to test.
enum ReplicaReply: Sendable {
    case json(status: Int, body: String, delay: Duration)
    /// Server-sent events: the first after `firstDelay`, each next after `interval`.
    case stream(events: [String], firstDelay: Duration, interval: Duration)
    case text(status: Int, contentType: String, body: String)
    case echo
    /// Tokens come from the replica's continuous-batching engine.
    case generate(Completion)
    /// Answered with `reply` once a batch of this cost has run on the replica's device.
    indirect case batch(ReplicaScheduler.BatchKind, cost: Duration, reply: ReplicaReply)
}

/// The OpenAI-compatible surface of the simulator: chat completions, completions, embeddings,
/// models. Output is deterministic in the prompt (see `SimulatedText`).
struct ReplicaAPI {
    let configuration: ReplicaConfiguration

    func reply(method: String, path: Substring, body: [UInt8], metrics: () -> String) -> ReplicaReply {
        switch (method, path) {
        case ("GET", "/health"), ("GET", "/v2/health/ready"), ("GET", "/v2/health/live"):
            return .json(status: 200, body: "{\"status\":\"ok\"}", delay: .zero)
        case ("GET", _) where path.hasPrefix("/v2/models/"):
            return v2Model(path.dropFirst("/v2/models/".count))
        case ("POST", _) where path.hasPrefix("/v2/models/") && path.hasSuffix("/infer"):
            return infer(model: path.dropFirst("/v2/models/".count).dropLast("/infer".count), body: body)
        case ("GET", "/v1/models"):
            let model = "{\"id\":\(quoted(configuration.model)),\"object\":\"model\",\"created\":0,\"owned_by\":\"sluice-replica\"}"
            return .json(status: 200, body: "{\"object\":\"list\",\"data\":[\(model)]}", delay: .zero)
        case ("GET", "/metrics"):
            return .text(status: 200, contentType: "text/plain; version=0.0.4", body: metrics())
        case ("POST", "/v1/chat/completions"):
            return completion(body: body, chat: true)
        case ("POST", "/v1/completions"):
            return completion(body: body, chat: false)
        case ("POST", "/v1/embeddings"):
            return embeddings(body: body)
        case ("POST", "/v1/echo"):
            return .echo
        default:
            return error(404, "no route \(method) \(path)", code: "not_found")
        }
    }

    private func error(_ status: Int, _ message: String, code: String) -> ReplicaReply {
        .json(status: status, body: "{\"error\":{\"message\":\(quoted(message)),\"type\":\"invalid_request_error\",\"code\":\(quoted(code))}}", delay: .zero)
    }

    private func parse(_ body: [UInt8]) -> [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]
    }

    private func completion(body: [UInt8], chat: Bool) -> ReplicaReply {
        guard let request = parse(body) else { return error(400, "body is not a JSON object", code: "invalid_json") }
        let prompt: String
        if chat {
            guard let messages = request["messages"] as? [[String: Any]] else {
                return error(400, "messages is required", code: "invalid_request")
            }
            prompt = messages.compactMap { $0["content"] as? String }.joined(separator: "\n")
        } else {
            guard let text = (request["prompt"] as? String) ?? (request["prompt"] as? [String])?.joined(separator: "\n") else {
                return error(400, "prompt is required", code: "invalid_request")
            }
            prompt = text
        }
        let model = (request["model"] as? String) ?? configuration.model
        let maxTokens = max(1, min((request["max_tokens"] as? Int) ?? (request["max_completion_tokens"] as? Int) ?? configuration.defaultMaxTokens, 4096))
        let stream = (request["stream"] as? Bool) ?? false
        let includeUsage = ((request["stream_options"] as? [String: Any])?["include_usage"] as? Bool) ?? false
        let completion = Completion(chat: chat, prompt: prompt, model: model, maxTokens: maxTokens, stream: stream, includeUsage: includeUsage)
        if configuration.engine != nil {
            return .generate(completion)
        }
        let scale = configuration.timeScale
        if !stream {
            let delay = (configuration.timeToFirstToken + configuration.interTokenDelay * (maxTokens - 1)) * scale
            return .json(status: 200, body: completion.json, delay: delay)
        }
        // (`event` already frames each event; the fixed-clock player adds the framing itself.)
        let events = (0..<maxTokens).map { String(completion.event($0).dropFirst(6).dropLast(2)) }
        return .stream(events: events, firstDelay: configuration.timeToFirstToken * scale, interval: configuration.interTokenDelay * scale)
    }

    private func embeddings(body: [UInt8]) -> ReplicaReply {
        guard let request = parse(body) else { return error(400, "body is not a JSON object", code: "invalid_json") }
        let inputs: [String]
        switch request["input"] {
        case let text as String: inputs = [text]
        case let texts as [String]: inputs = texts
        case let tokens as [Int]: inputs = [tokens.map(String.init).joined(separator: " ")]
        case let lists as [[Int]]: inputs = lists.map { $0.map(String.init).joined(separator: " ") }
        default: return error(400, "input must be a string, a list of strings or token arrays", code: "invalid_request")
        }
        guard !inputs.isEmpty else { return error(400, "input must not be empty", code: "invalid_request") }
        let model = (request["model"] as? String) ?? configuration.model
        let base64 = (request["encoding_format"] as? String) == "base64"
        let dimensions = (request["dimensions"] as? Int).map { max(1, min($0, 4096)) } ?? configuration.embeddingDimensions
        var items: [String] = []
        var promptTokens = 0
        for (index, text) in inputs.enumerated() {
            promptTokens += SimTokenizer.count(text)
            let vector = SimulatedText.embedding(text, dimensions: dimensions)
            let encoded: String
            if base64 {
                var bytes: [UInt8] = []
                for value in vector { withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) } }
                encoded = quoted(Data(bytes).base64EncodedString())
            } else {
                encoded = "[" + vector.map { "\($0)" }.joined(separator: ",") + "]"
            }
            items.append("{\"object\":\"embedding\",\"index\":\(index),\"embedding\":\(encoded)}")
        }
        let body = "{\"object\":\"list\",\"data\":[\(items.joined(separator: ","))],\"model\":\(quoted(model)),\"usage\":{\"prompt_tokens\":\(promptTokens),\"total_tokens\":\(promptTokens)}}"
        let cost = configuration.embeddingBatchBase + configuration.embeddingPerInput * inputs.count
        return .batch(.embeddings, cost: cost, reply: .json(status: 200, body: body, delay: .zero))
    }

    // MARK: Open Inference Protocol V2

    private func v2Error(_ status: Int, _ message: String) -> ReplicaReply {
        .json(status: status, body: "{\"error\":\(quoted(message))}", delay: .zero)
    }

    /// `GET /v2/models/{m}` (metadata) and `GET /v2/models/{m}/ready`.
    private func v2Model(_ rest: Substring) -> ReplicaReply {
        let ready = rest.hasSuffix("/ready")
        let name = ready ? rest.dropLast("/ready".count) : rest
        guard name == configuration.model else { return v2Error(404, "model \(name) not found") }
        if ready { return .json(status: 200, body: "{\"name\":\(quoted(String(name))),\"ready\":true}", delay: .zero) }
        let metadata = "{\"name\":\(quoted(String(name))),\"platform\":\"sluice-replica\",\"versions\":[\"1\"],"
            + "\"inputs\":[{\"name\":\"input-0\",\"datatype\":\"FP64\",\"shape\":[-1,-1]}],"
            + "\"outputs\":[{\"name\":\"predict\",\"datatype\":\"FP64\",\"shape\":[-1,1]}]}"
        return .json(status: 200, body: metadata, delay: .zero)
    }

    /// `POST /v2/models/{m}/infer`: numeric tensors in (rows along the first dimension, data
    /// flattened in row-major order as the protocol says), one output `predict` of shape
    /// `[rows, 1]` out: each row's mean times 2 plus 1, so answers are easy to check.
    private func infer(model: Substring, body: [UInt8]) -> ReplicaReply {
        guard model == configuration.model else { return v2Error(404, "model \(model) not found") }
        guard let request = parse(body), let inputs = request["inputs"] as? [[String: Any]], let first = inputs.first else {
            return v2Error(400, "inputs is required")
        }
        guard let shape = first["shape"] as? [Int], let rows = shape.first, rows > 0, shape.allSatisfy({ $0 > 0 }) else {
            return v2Error(400, "inputs[0].shape must be positive integers")
        }
        let values: [Double]
        if let numbers = first["data"] as? [NSNumber] {
            values = numbers.map(\.doubleValue)
        } else if let nested = first["data"] as? [[NSNumber]] {
            values = nested.flatMap { $0.map(\.doubleValue) }
        } else {
            return v2Error(400, "inputs[0].data must be numbers")
        }
        let perRow = shape.dropFirst().reduce(1, *)
        guard values.count == rows * perRow else {
            return v2Error(400, "inputs[0].data has \(values.count) values, shape \(shape) needs \(rows * perRow)")
        }
        let outputs = (0..<rows).map { row -> String in
            let slice = values[(row * perRow)..<((row + 1) * perRow)]
            return "\(slice.reduce(0, +) / Double(perRow) * 2 + 1)"
        }
        let id = (request["id"] as? String).map { ",\"id\":\(quoted($0))" } ?? ""
        let answer = "{\"model_name\":\(quoted(String(model))),\"model_version\":\"1\"\(id),"
            + "\"outputs\":[{\"name\":\"predict\",\"datatype\":\"FP64\",\"shape\":[\(rows),1],\"data\":[\(outputs.joined(separator: ","))]}]}"
        let cost = configuration.inferBatchBase + configuration.inferPerRow * rows
        return .batch(.infer, cost: cost, reply: .json(status: 200, body: answer, delay: .zero))
    }
}

/// A JSON string literal.
func quoted(_ text: String) -> String {
    let data = (try? JSONSerialization.data(withJSONObject: [text], options: [.withoutEscapingSlashes])) ?? Data("[\"\"]".utf8)
    let array = String(decoding: data, as: UTF8.self)
    return String(array.dropFirst().dropLast())
}
