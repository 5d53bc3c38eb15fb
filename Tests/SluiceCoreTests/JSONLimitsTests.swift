import SluiceCore
import Testing

/// What the body scanner does with numbers written as floats, strings that are not UTF-8, and
/// documents too large to be worth a tree.
struct JSONLimitsTests {
    func facts(_ bytes: [UInt8]) throws(JSONFieldScanner.Failure) -> CompletionRequestFacts {
        let result = bytes.withUnsafeBytes { raw in
            Result { () throws(JSONFieldScanner.Failure) -> CompletionRequestFacts in try JSONFieldScanner.completionFacts(in: raw) }
        }
        return try result.get()
    }

    func facts(_ text: String) throws(JSONFieldScanner.Failure) -> CompletionRequestFacts { try facts(Array(text.utf8)) }

    func count(_ text: String, atMost limit: Int = 1_000) throws(JSONFieldScanner.Failure) -> Int {
        let result = Array(text.utf8).withUnsafeBytes { raw in
            Result { () throws(JSONFieldScanner.Failure) -> Int in try JSONFieldScanner.valueCount(in: raw, atMost: limit) }
        }
        return try result.get()
    }

    @Test func aTokenLimitWrittenAsAFloatCountsRoundedUp() throws {
        let found = try facts(#"{"messages":[],"max_tokens":1e5,"max_completion_tokens":12.5,"n":2.0}"#)
        #expect(found.maxTokens == 100_000)
        #expect(found.maxCompletionTokens == 13)
        #expect(found.n == 2)
        #expect(try facts(#"{"max_tokens":1e400}"#).maxTokens == 1 << 62)
        #expect(try facts(#"{"max_tokens":-2.5}"#).maxTokens == -2)
        #expect(try facts(#"{"max_tokens":123456789012345678901234}"#).maxTokens == 1 << 62)
        #expect(try facts(#"{"max_tokens":"100"}"#).maxTokens == nil)
    }

    @Test func aStringThatIsNotUTF8IsRefusedWhereItIsRead() throws {
        // The model's name is read (decoded): invalid UTF-8 there is an error, not a repair.
        let bad: [UInt8] = Array(#"{"model":"a"#.utf8) + [0xFF] + Array(#"b"}"#.utf8)
        #expect(throws: JSONFieldScanner.Failure.self) { try facts(bad) }
        let input: [UInt8] = Array(#"{"input":["a"#.utf8) + [0xC3, 0x28] + Array(#""]}"#.utf8)
        #expect(throws: JSONFieldScanner.Failure.self) { try JSONValue.parse(input) }
        #expect(try JSONValue.parse(Array(#"{"input":["é😀"]}"#.utf8))["input"]?.array?.first?.string == "é😀")
    }

    @Test func valuesAreCountedAtEveryDepthUpToTheLimit() throws {
        #expect(try count(#"{"input":["a","b",[1,2]],"model":null}"#) == 8)
        #expect(try count(#" [] "#) == 1)
        #expect(try count(#"{"input":["a","b",[1,2]],"model":null}"#, atMost: 3) == 4)
        #expect(throws: JSONFieldScanner.Failure.self) { try count(#"{"input":[1,2}"#) }
        #expect(throws: JSONFieldScanner.Failure.self) { try count(#"{"a":1} x"#) }
    }
}
