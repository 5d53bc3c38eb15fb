import Testing
@testable import SluiceCore

@Suite struct RouteTableTests {
    @Test func pathPatterns() {
        let exact = PathPattern("/v1/chat/completions")!
        #expect(exact.matches("/v1/chat/completions"))
        #expect(!exact.matches("/v1/chat/completions/x"))
        let prefix = PathPattern("/v2/*")!
        #expect(prefix.matches("/v2/models/m/infer"))
        #expect(prefix.matches("/v2"))
        #expect(!prefix.matches("/v20"))
        #expect(PathPattern("/*")!.matches("/anything"))
        #expect(PathPattern("v1") == nil)
        #expect(PathPattern("/v1/*/x") == nil)
        #expect(PathPattern("/v1*") == nil)
    }

    @Test func routesByPathThenModel() {
        let table = RouteTable(entries: [
            .init(paths: [PathPattern("/v1/chat/completions")!], models: ["llama"]),
            .init(paths: [PathPattern("/v1/chat/completions")!], models: ["*"]),
            .init(paths: [PathPattern("/v1/embeddings")!], models: nil),
        ])
        #expect(table.route(path: "/v1/embeddings") == .pool(2))
        #expect(table.route(path: "/v1/chat/completions") == .needsModel)
        #expect(table.route(path: "/v1/chat/completions", model: "llama") == .pool(0))
        #expect(table.route(path: "/v1/chat/completions", model: "mistral") == .pool(1))
        #expect(table.route(path: "/v1/chat/completions", model: nil) == .pool(1))
        #expect(table.route(path: "/nope") == .noRoute)
    }

    @Test func modelOnlyPoolsSayNoRouteForUnknownModels() {
        let table = RouteTable(entries: [.init(paths: [PathPattern("/v1/*")!], models: ["a"])])
        #expect(table.route(path: "/v1/chat/completions", model: "b") == .noRoute)
        #expect(table.route(path: "/v1/chat/completions", model: nil) == .noRoute)
    }
}

@Suite struct JSONFieldScannerTests {
    func scan(_ text: String) throws(JSONFieldScanner.Failure) -> [String: String] {
        let result = Array(text.utf8).withUnsafeBytes { raw in
            Result { () throws(JSONFieldScanner.Failure) -> CompletionRequestFacts in try JSONFieldScanner.completionFacts(in: raw) }
        }
        let facts = try result.get()
        return [("model", facts.model), ("user", facts.user)].reduce(into: [:]) { fields, pair in fields[pair.0] = pair.1 }
    }

    @Test func extractsTopLevelStringsOnly() throws {
        let fields = try scan(#"{"messages":[{"model":"inner","content":"x"}],"model":"llama-3","n":1.5e3,"ok":true,"user":"\u00e9\"q"}"#)
        #expect(fields == ["model": "llama-3", "user": "é\"q"])
        #expect(try scan(#"{"model":42}"#) == [:])
        #expect(try scan(#" { } "#) == [:])
        #expect(try scan(#"{"model":"\ud83d\ude00"}"#) == ["model": "😀"])
    }

    @Test(arguments: [
        "", "[]", "{", #"{"model":}"#, #"{"model":"x",}"#, #"{"a":tru}"#, #"{"a":01}"#, #"{"a":1.}"#,
        #"{"a":"\x"}"#, "{\"a\":\"line\nbreak\"}", #"{"a":1} x"#, #"{'a':1}"#,
    ])
    func rejectsInvalidJSON(_ text: String) {
        #expect(throws: JSONFieldScanner.Failure.self) { try scan(text) }
    }

    @Test func limitsNesting() {
        let deep = #"{"a":"# + String(repeating: "[", count: 200) + String(repeating: "]", count: 200) + "}"
        #expect(throws: JSONFieldScanner.Failure.self) { try scan(deep) }
        let fine = #"{"a":"# + String(repeating: "[", count: 100) + String(repeating: "]", count: 100) + "}"
        #expect(throws: Never.self) { try scan(fine) }
    }
}

@Suite struct VersionedRouteTableTests {
    /// Pool 0 serves any model on chat paths; pools 1 and 2 are the versions of "llama" (alias
    /// "gpt-default"), pool 2 only on chat completions.
    static let table = RouteTable(
        entries: [
            .init(paths: [PathPattern("/v1/*")!], models: ["other"]),
            .init(paths: [PathPattern("/v1/*")!], models: nil),
            .init(paths: [PathPattern("/v1/chat/completions")!], models: nil),
        ],
        versioned: [.init(names: ["llama", "gpt-default"], pools: [1, 2])])

    @Test func aVersionedModelOrAliasIsRoutedToItsVersions() {
        #expect(Self.table.route(path: "/v1/chat/completions") == .needsModel)
        #expect(Self.table.route(path: "/v1/chat/completions", model: "llama") == .versioned(0))
        #expect(Self.table.route(path: "/v1/chat/completions", model: "gpt-default") == .versioned(0))
        #expect(Self.table.route(path: "/v1/chat/completions", model: "other") == .pool(0))
        // Any other model: the first pool that takes any model.
        #expect(Self.table.route(path: "/v1/chat/completions", model: "mistral") == .pool(1))
        #expect(Self.table.route(path: "/v2/infer", model: "llama") == .noRoute)
        #expect(Self.table.admits(path: "/v1/embeddings", pool: 1))
        #expect(!Self.table.admits(path: "/v1/embeddings", pool: 2))
    }

    @Test func aPoolThatServesAVersionNeedsTheModelEvenIfItTakesAnyModel() {
        let table = RouteTable(entries: [.init(paths: [PathPattern("/v1/*")!], models: nil)], versioned: [.init(names: ["m"], pools: [0])])
        #expect(table.route(path: "/v1/embeddings") == .needsModel)
        #expect(RouteTable(entries: table.entries).route(path: "/v1/embeddings") == .pool(0))
    }
}
