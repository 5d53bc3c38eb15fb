import Testing
@testable import SluiceCore

@Suite struct JSONValueTests {
    @Test func parsesAndWritesBackExactly() throws {
        let text = #"{"b":[1,2.50,-3e2,true,false,null],"a":"x\"y\\\n\u0001é","o":{}}"#
        let value = try JSONValue.parse(Array(text.utf8))
        #expect(value["b"]?.array?.count == 6 && value["a"]?.string == "x\"y\\\n\u{1}é")
        // Keys keep their order; numbers keep their text.
        #expect(String(decoding: value.serialized, as: UTF8.self) == #"{"b":[1,2.50,-3e2,true,false,null],"a":"x\"y\\\n\u0001é","o":{}}"#)
        #expect(try JSONValue.parse(value.serialized) == value)
        #expect(throws: JSONFieldScanner.Failure.self) { try JSONValue.parse(Array("{\"a\":}".utf8)) }
        #expect(throws: JSONFieldScanner.Failure.self) { try JSONValue.parse(Array("[1] 2".utf8)) }
    }
}

@Suite struct EmbeddingsBatchTests {
    /// A deterministic embeddings server: each input's vector is a function of the input alone.
    static func embed(_ input: JSONValue, base64: Bool) -> JSONValue {
        let text = String(decoding: input.serialized, as: UTF8.self)
        let seed = text.utf8.reduce(UInt64(14695981039346656037)) { ($0 ^ UInt64($1)) &* 1099511628211 }
        if base64 { return .string("QUJD\(seed % 1000)==") }
        return .array((0..<3).map { .number("0.\(String((seed >> UInt64($0 * 8)) % 100_000))") })
    }

    static func answer(_ body: JSONValue) -> JSONValue {
        let member = try! EmbeddingsBatch.member(body)
        let base64 = body["encoding_format"]?.string == "base64"
        let data = member.inputs.enumerated().map { index, input in
            JSONValue.object([("object", .string("embedding")), ("index", .number(String(index))), ("embedding", embed(input, base64: base64))])
        }
        let tokens = member.inputs.count * 7
        return .object([
            ("object", .string("list")), ("data", .array(data)), ("model", body["model"] ?? .null),
            ("usage", .object([("prompt_tokens", .number(String(tokens))), ("total_tokens", .number(String(tokens)))])),
        ])
    }

    @Test func everyMemberGetsExactlyTheVectorsItWouldHaveGotAlone() throws {
        var random = SplitMix64(seed: 17)
        for round in 0..<300 {
            let base64 = round % 3 == 0
            let tokens = round % 4 == 1
            var bodies: [JSONValue] = []
            for _ in 0..<(Int(random.next() % 8) + 1) {
                let count = Int(random.next() % 5) + 1
                let input: JSONValue
                if tokens {
                    let arrays = (0..<count).map { _ in JSONValue.array((0..<(Int(random.next() % 4) + 1)).map { _ in .number(String(random.next() % 50_000)) }) }
                    // A single token array is the list of ints itself.
                    input = count == 1 && random.next() % 2 == 0 ? arrays[0] : .array(arrays)
                } else if count == 1, random.next() % 2 == 0 {
                    input = .string("text \(random.next() % 1000)")
                } else {
                    input = .array((0..<count).map { _ in .string("text \(random.next() % 1000)") })
                }
                var body = JSONValue.object([("model", .string("embed")), ("input", input)])
                if base64 { body = body.setting("encoding_format", to: .string("base64")) }
                bodies.append(body)
            }
            let members = try bodies.map { try EmbeddingsBatch.member($0) }
            let (merged, spans) = EmbeddingsBatch.merge(members)
            let parts = try #require(EmbeddingsBatch.split(Self.answer(merged), spans: spans))
            for (body, part) in zip(bodies, parts) {
                let alone = Self.answer(body)
                #expect(part["data"] == alone["data"], "round \(round)")
                #expect(part["model"] == alone["model"] && part["object"] == alone["object"])
            }
            // Usage: the parts add up to the batch's.
            let total = parts.compactMap { $0["usage"]?["prompt_tokens"]?.int }.reduce(0, +)
            #expect(total == Self.answer(merged)["usage"]?["prompt_tokens"]?.int)
        }
    }

    @Test func onlyRequestsThatDifferInInputJoin() throws {
        let a = try EmbeddingsBatch.member(try JSONValue.parse(Array(#"{"model":"m","input":"a"}"#.utf8)))
        let b = try EmbeddingsBatch.member(try JSONValue.parse(Array(#"{"model":"m","input":["b","c"]}"#.utf8)))
        let base64 = try EmbeddingsBatch.member(try JSONValue.parse(Array(#"{"model":"m","input":"a","encoding_format":"base64"}"#.utf8)))
        let tokens = try EmbeddingsBatch.member(try JSONValue.parse(Array(#"{"model":"m","input":[1,2,3]}"#.utf8)))
        let dimensions = try EmbeddingsBatch.member(try JSONValue.parse(Array(#"{"model":"m","input":"a","dimensions":64}"#.utf8)))
        #expect(a.joinKey == b.joinKey)
        #expect(Set([a.joinKey, base64.joinKey, tokens.joinKey, dimensions.joinKey]).count == 4)
        #expect(tokens.inputs.count == 1 && b.inputs.count == 2)
        for bad in [#"[1]"#, #"{"model":"m"}"#, #"{"input":[]}"#, #"{"input":[1,"a"]}"#, #"{"input":[[1],[]]}"#, #"{"input":3}"#] {
            #expect(throws: EmbeddingsBatch.Refusal.self) { try EmbeddingsBatch.member(try JSONValue.parse(Array(bad.utf8))) }
        }
        // An answer without one item per input cannot be split.
        let (_, spans) = EmbeddingsBatch.merge([a, b])
        let short = try JSONValue.parse(Array(#"{"data":[{"index":0,"embedding":[1]},{"index":1,"embedding":[2]}]}"#.utf8))
        #expect(EmbeddingsBatch.split(short, spans: spans) == nil)
        #expect(EmbeddingsBatch.proportional(10, weights: [1, 1, 1]) == [4, 3, 3])
        #expect(EmbeddingsBatch.proportional(7, weights: [1, 2, 4]) == [1, 2, 4])
    }
}

@Suite struct InferBatchTests {
    /// A deterministic row-wise model: per row, the sum of the row's values, their count and
    /// the first value's parity (a function of the row alone, as a real model's is).
    static func answer(_ body: JSONValue) -> JSONValue {
        let member = try! InferBatch.member(body)
        let x = member.tensors[0]
        let width = x.trailing.reduce(1, *)
        var sums: [JSONValue] = []
        var counts: [JSONValue] = []
        for row in 0..<member.rows {
            let values = x.data[(row * width)..<((row + 1) * width)].compactMap { $0.int }
            sums.append(.number(String(values.reduce(0, +))))
            counts.append(contentsOf: [.number(String(values.count)), .number(String((values.first ?? 0) % 2))])
        }
        var answer = JSONValue.object([
            ("model_name", .string("iris")),
            ("outputs", .array([
                .object([("name", .string("sum")), ("shape", .array([.number(String(member.rows))])), ("datatype", .string("INT64")), ("data", .array(sums))]),
                .object([("name", .string("pair")), ("shape", .array([.number(String(member.rows)), .number("2")])), ("datatype", .string("INT64")), ("data", .array(counts))]),
            ])),
        ])
        if let id = body["id"] { answer = answer.setting("id", to: id) }
        return answer
    }

    @Test func everyMemberGetsExactlyItsRowsOfEveryOutput() throws {
        var random = SplitMix64(seed: 5)
        for round in 0..<300 {
            let width = Int(random.next() % 4) + 1
            var bodies: [JSONValue] = []
            for index in 0..<(Int(random.next() % 6) + 1) {
                let rows = Int(random.next() % 4) + 1
                let values = (0..<(rows * width)).map { _ in JSONValue.number(String(random.next() % 100)) }
                // Data flat or nested, row by row.
                let data: JSONValue = random.next() % 2 == 0
                    ? .array(values)
                    : .array((0..<rows).map { row in .array(Array(values[(row * width)..<((row + 1) * width)])) })
                var body = JSONValue.object([
                    ("inputs", .array([.object([
                        ("name", .string("x")), ("shape", .array([.number(String(rows)), .number(String(width))])),
                        ("datatype", .string("INT64")), ("data", data),
                    ])])),
                ])
                if index % 2 == 0 { body = body.setting("id", to: .string("req-\(round)-\(index)")) }
                bodies.append(body)
            }
            let members = try bodies.map { try InferBatch.member($0) }
            let (merged, spans) = InferBatch.merge(members)
            #expect(merged["inputs"]?.array?.first?["shape"]?.array?.first?.int == members.reduce(0) { $0 + $1.rows })
            let parts = try #require(InferBatch.split(Self.answer(merged), spans: spans))
            for (body, part) in zip(bodies, parts) {
                #expect(part == Self.answer(body), "round \(round)")
            }
        }
    }

    @Test func whatCannotJoinIsSentAlone() throws {
        func member(_ text: String) throws -> InferBatch.Member { try InferBatch.member(try JSONValue.parse(Array(text.utf8))) }
        let a = try member(#"{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}"#)
        let b = try member(#"{"id":"7","inputs":[{"name":"x","shape":[2,4],"datatype":"FP32","data":[[1,2,3,4],[5,6,7,8]]}]}"#)
        let wider = try member(#"{"inputs":[{"name":"x","shape":[1,5],"datatype":"FP32","data":[1,2,3,4,5]}]}"#)
        let otherType = try member(#"{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP64","data":[1,2,3,4]}]}"#)
        let withOutputs = try member(#"{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}],"outputs":[{"name":"y"}]}"#)
        #expect(a.joinKey == b.joinKey)
        #expect(Set([a.joinKey, wider.joinKey, otherType.joinKey, withOutputs.joinKey]).count == 4)
        #expect(throws: InferBatch.Refusal.binaryExtension) {
            try member(#"{"inputs":[{"name":"x","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":12}}]}"#)
        }
        #expect(throws: InferBatch.Refusal.badInput("x")) { try member(#"{"inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[1,2,3]}]}"#) }
        #expect(throws: InferBatch.Refusal.inconsistentRows) {
            try member(#"{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","data":[1,2]},{"name":"y","shape":[3],"datatype":"FP32","data":[1,2,3]}]}"#)
        }
        // An output that is not one row per input row cannot be split.
        let (_, spans) = InferBatch.merge([a, b])
        let scalar = try JSONValue.parse(Array(#"{"outputs":[{"name":"mean","shape":[1],"datatype":"FP32","data":[0.5]}]}"#.utf8))
        #expect(InferBatch.split(scalar, spans: spans) == nil)
    }
}
