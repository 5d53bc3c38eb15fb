import Foundation
import NIOCore
import SluiceConfig
import SluiceCore
import SluiceTesting
import Testing
@testable import SluiceGateway

/// Token limits: the estimate charged at admission, the settlement with the replica's usage
/// (JSON answers and streams, asking the replica for the usage chunk when the client did not,
/// and taking it out again), per-model limits, and the pieces each rests on.
@Suite(.serialized) struct TokenLimitTests {
    // MARK: Reading a request's cost

    @Test func theEstimateCountsPromptBytesOverFourPlusWhatMayBeGenerated() throws {
        func cost(_ json: String, defaultMaxTokens: Int = 100) -> RequestCost? {
            let facts = Array(json.utf8).withUnsafeBytes { try? JSONFieldScanner.completionFacts(in: $0) }
            return facts.map { RequestCost($0, defaultMaxTokens: defaultMaxTokens) }
        }
        // 12 bytes → 3 tokens, + 4 per message; completion: max_tokens × n.
        let chat = try #require(cost(#"{"model":"m","messages":[{"role":"user","content":"hello sluice"}],"max_tokens":7,"n":2}"#))
        #expect(chat.model == "m" && chat.promptTokens == 7 && chat.completionTokens == 14 && chat.tokens == 21)
        #expect(!chat.stream && !chat.clientAskedUsage && !chat.hasStreamOptions)
        // max_completion_tokens wins over max_tokens; no limit at all charges the default.
        #expect(cost(#"{"messages":[],"max_tokens":7,"max_completion_tokens":3}"#)?.completionTokens == 3)
        #expect(cost(#"{"prompt":"abcdefgh"}"#)?.tokens == 2 + 100)
        #expect(cost(#"{"prompt":[[1,2,3],[4]],"max_tokens":1}"#)?.tokens == 4 + 1)
        // Content parts; embeddings have no completion.
        #expect(cost(#"{"messages":[{"role":"user","content":[{"type":"text","text":"abcd"},{"type":"image_url"}]}],"max_tokens":0}"#)?.tokens == 1 + 4)
        #expect(cost(#"{"model":"e","input":["abcd","abcdefgh",[1,2]]}"#)?.tokens == 1 + 2 + 2)
        let streamed = try #require(cost(#"{"stream":true,"stream_options":{"include_usage":true},"messages":[]}"#))
        #expect(streamed.stream && streamed.clientAskedUsage && streamed.hasStreamOptions)
        // A boolean is not a number of tokens.
        #expect(cost(#"{"messages":[],"max_tokens":true}"#)?.completionTokens == 100)
        #expect(cost("[1]") == nil && cost("not json") == nil)
        // Numbers no request could mean are clamped, never overflow.
        let huge = try #require(cost(#"{"messages":[],"max_tokens":9223372036854775807,"n":9223372036854775807}"#))
        #expect(huge.completionTokens == (1 << 31) * (1 << 10))
        #expect(cost(#"{"messages":[],"max_tokens":-5}"#)?.completionTokens == 0)
    }

    @Test func askingForUsageKeepsTheClientsBytesOrSetsTheFlagInItsOptions() throws {
        let allocator = ByteBufferAllocator()
        let plain = #"{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}"#
        let asked = try #require(RequestCost.askingUsage(ByteBuffer(string: plain), hasStreamOptions: false, allocator: allocator))
        #expect(String(buffer: asked) == #"{"stream_options":{"include_usage":true},"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}"#)
        // Its own options: the flag is set there, and nothing else changes (key order, a
        // number's text).
        let own = #"{"stream":true,"stream_options":{"include_usage":false,"continuous_usage_stats":false},"temperature":0.70,"messages":[]}"#
        let rewritten = try #require(RequestCost.askingUsage(ByteBuffer(string: own), hasStreamOptions: true, allocator: allocator))
        #expect(String(buffer: rewritten) == #"{"stream":true,"stream_options":{"include_usage":true,"continuous_usage_stats":false},"temperature":0.70,"messages":[]}"#)
    }

    // MARK: Reading usage from the response

    static func events(_ meter: UsageMeter, _ parts: [String]) -> String {
        parts.flatMap { meter.consume(ByteBuffer(string: $0)) }.map { String(buffer: $0) }.joined() + (meter.end().map { String(buffer: $0) } ?? "")
    }

    @Test func aStreamsUsageEventIsReadAndDroppedWhenTheGatewayAskedForIt() {
        let token = #"data: {"choices":[{"index":0,"delta":{"content":"a"}}],"usage":null}"# + "\n\n"
        let usage = #"data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}"# + "\n\n"
        let done = "data: [DONE]\n\n"
        // Split at awkward places: inside an event, inside the blank line.
        let stream = token + token + usage + done
        let cuts = [3, token.utf8.count + 1, 2 * token.utf8.count + 10, stream.utf8.count - 1]
        var parts: [String] = []
        var last = 0
        let bytes = Array(stream.utf8)
        for cut in cuts + [bytes.count] {
            parts.append(String(decoding: bytes[last..<cut], as: UTF8.self))
            last = cut
        }
        let stripping = UsageMeter(strip: true)
        stripping.responseStarted(eventStream: true, mayDrop: true, allocator: ByteBufferAllocator())
        #expect(Self.events(stripping, parts) == token + token + done)
        #expect(stripping.usedTokens == 7)
        let keeping = UsageMeter(strip: false)
        keeping.responseStarted(eventStream: true, mayDrop: true, allocator: ByteBufferAllocator())
        #expect(Self.events(keeping, parts) == stream)
        #expect(keeping.usedTokens == 7)
        // Under a content-length nothing may be left out: read, not dropped.
        let fixed = UsageMeter(strip: true)
        fixed.responseStarted(eventStream: true, mayDrop: false, allocator: ByteBufferAllocator())
        #expect(Self.events(fixed, [stream]) == stream && fixed.usedTokens == 7)
        // CRLF framing, and usage without total_tokens.
        let crlf = UsageMeter(strip: true)
        crlf.responseStarted(eventStream: true, mayDrop: true, allocator: ByteBufferAllocator())
        let crlfUsage = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}\r\n\r\n"
        #expect(Self.events(crlf, [crlfUsage + "data: [DONE]\r\n\r\n"]) == "data: [DONE]\r\n\r\n" && crlf.usedTokens == 7)
    }

    @Test func aJSONAnswersUsageIsReadWhenItEnds() {
        let meter = UsageMeter(strip: false)
        meter.responseStarted(eventStream: false, mayDrop: true, allocator: ByteBufferAllocator())
        let body = #"{"id":"x","choices":[{"message":{"content":"usage"}}],"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12}}"#
        let split = body.index(body.startIndex, offsetBy: 50)
        #expect(Self.events(meter, [String(body[..<split]), String(body[split...])]) == body)
        #expect(meter.usedTokens == 12)
        // Only the last usage object is parsed: one mentioned inside a string, or nested
        // details, do not confuse it.
        let tricky = #"{"choices":[{"message":{"content":"say \"usage\":{\"total_tokens\":1} {"}}],"usage":{"prompt_tokens":4,"total_tokens":9,"prompt_tokens_details":{"cached_tokens":2}}}"#
        let trickyMeter = UsageMeter(strip: false)
        trickyMeter.responseStarted(eventStream: false, mayDrop: true, allocator: ByteBufferAllocator())
        _ = Self.events(trickyMeter, [tricky])
        #expect(trickyMeter.usedTokens == 9)
        let none = UsageMeter(strip: false)
        none.responseStarted(eventStream: false, mayDrop: true, allocator: ByteBufferAllocator())
        _ = Self.events(none, [#"{"error":{"message":"no"}}"#])
        #expect(none.usedTokens == nil)
    }

    // MARK: Admission and settlement, on a manual clock

    static func admission(tokensPerMinute: Int, burst: Int, models: [ModelLimits] = []) throws -> Admission {
        var configuration = LimitsConfiguration()
        var limits = TenantLimits()
        limits.tokensPerMinute = tokensPerMinute
        limits.tokenBurst = burst
        limits.models = models
        configuration.defaultTenant = limits
        return try Admission(configuration)
    }

    @Test func settlingRefundsOrChargesTheDifferenceAndAFailureIsRefunded() throws {
        // 600 tokens a minute: one every 100 ms; 1,000 at once.
        let admission = try Self.admission(tokensPerMinute: 600, burst: 1_000)
        let now: UInt64 = 10_000_000_000
        func remaining() -> Int { admission.policy.state(of: 0).body[0].remaining(at: now) }
        guard case .admitted(let windows, let store) = admission.admitBody(tenant: 0, model: "m", tokens: 400, now: now) else {
            Issue.record("refused")
            return
        }
        #expect(windows.map(\.name) == ["tokens"] && windows[0].remaining == 600 && windows[0].limit == 600 && store == .local)
        // Used 150 of the 400 charged: 250 come back.
        #expect(admission.settle(TokenCharge(tenant: 0, model: "m", tokens: 400, store: .local), used: 150, succeeded: true, now: now) == -250)
        #expect(remaining() == 850)
        // Used more than charged: the rest is charged.
        _ = admission.admitBody(tenant: 0, model: "m", tokens: 100, now: now)
        #expect(admission.settle(TokenCharge(tenant: 0, model: "m", tokens: 100, store: .local), used: 300, succeeded: true, now: now) == 200)
        #expect(remaining() == 550)
        // A failed request used nothing; an unknown usage on success keeps the estimate.
        _ = admission.admitBody(tenant: 0, model: "m", tokens: 200, now: now)
        #expect(admission.settle(TokenCharge(tenant: 0, model: "m", tokens: 200, store: .local), used: nil, succeeded: false, now: now) == -200)
        #expect(admission.settle(TokenCharge(tenant: 0, model: "m", tokens: 200, store: .local), used: nil, succeeded: true, now: now) == 0)
        #expect(remaining() == 550)
        // Over what is left: refused, nothing charged, and told when 600 will pass (50 more
        // tokens at 100 ms each).
        guard case .refused(_, let refusedWindows, let retry) = admission.admitBody(tenant: 0, model: "m", tokens: 600, now: now) else {
            Issue.record("admitted")
            return
        }
        #expect(refusedWindows.first?.remaining == 550 && retry == 5_000_000_000)
        #expect(remaining() == 550)
        // More than the whole burst can never pass: the answer says so, with no Retry-After.
        guard case .refused(let refusal, _, nil) = admission.admitBody(tenant: 0, model: "m", tokens: 1_001, now: now) else {
            Issue.record("expected a refusal without a retry time")
            return
        }
        #expect(refusal.error.message.contains("needs 1001 tokens"))
    }

    @Test func whatWasNotChargedIsNotSettledAndAFallbackChargeIsSettledInTheFallback() throws {
        var configuration = LimitsConfiguration()
        var limits = TenantLimits()
        limits.tokensPerMinute = 60
        limits.tokenBurst = 100
        configuration.defaultTenant = limits
        configuration.shadow = true
        configuration.instances = 2
        let shadow = try Admission(configuration)
        let now: UInt64 = 10_000_000_000
        // Shadow mode over the limit: let in, charged nowhere, so nothing to settle.
        guard case .admitted(_, let store) = shadow.admitBody(tenant: 0, model: nil, tokens: 500, now: now) else {
            Issue.record("refused in shadow mode")
            return
        }
        #expect(store == .none)
        // The fallback (this instance's half: 50 at once) is charged and settled on its own.
        guard case .admitted(_, let fallback) = shadow.admitBody(tenant: 0, model: nil, tokens: 40, now: now, fallback: true) else {
            Issue.record("refused")
            return
        }
        #expect(fallback == .fallback)
        _ = shadow.settle(TokenCharge(tenant: 0, model: nil, tokens: 40, store: .fallback), used: 10, succeeded: true, now: now)
        #expect((shadow.policy.state(of: 0).bodyFallback[0].remaining(at: now), shadow.policy.state(of: 0).body[0].remaining(at: now)) == (40, 100))
    }

    @Test func admittedTokensNeverExceedRateTimesWindowPlusBurstPlusTheLastOverrun() throws {
        // Random costs and settlements over 10 simulated minutes, the usage drawn on both sides
        // of the estimate (up to twice it): what was finally used by admitted requests, over any
        // window, stays within rate × window + burst, plus what the window's last request used
        // past its estimate (it was admitted on the estimate; its overrun is charged after, and
        // delays the requests that follow).
        let admission = try Self.admission(tokensPerMinute: 6_000, burst: 2_000)
        var random = SplitMix64(seed: 7)
        var now: UInt64 = 1_000_000_000
        var used: [(at: UInt64, tokens: Int, overrun: Int)] = []
        for _ in 0..<20_000 {
            now += random.next() % 60_000_000
            let estimate = Int(random.next() % 400) + 1
            if case .admitted = admission.admitBody(tenant: 0, model: nil, tokens: estimate, now: now) {
                let actual = Int(random.next() % UInt64(2 * estimate)) + 1
                _ = admission.settle(TokenCharge(tenant: 0, model: nil, tokens: estimate, store: .local), used: actual, succeeded: true, now: now)
                used.append((now, actual, max(0, actual - estimate)))
            }
        }
        #expect(used.count > 1_000)
        #expect(used.filter { $0.overrun > 0 }.count > 400)
        for window: UInt64 in [1_000_000_000, 10_000_000_000, 60_000_000_000] {
            let allowed = Int(window / 10_000_000) + 2_000  // 100 tokens a second
            var start = 0
            var sum = 0
            for end in used.indices {
                sum += used[end].tokens
                while used[end].at - used[start].at >= window {
                    sum -= used[start].tokens
                    start += 1
                }
                #expect(sum <= allowed + used[end].overrun, "window \(window) ending at request \(end)")
                if sum > allowed + used[end].overrun { return }
            }
        }
    }

    @Test func modelLimitsApplyOnlyToTheirModelAndChargeAllOrNothing() throws {
        var model = ModelLimits(model: "big")
        model.requestsPerMinute = 60
        model.burst = 1
        let admission = try Self.admission(tokensPerMinute: 600, burst: 1_000, models: [model])
        let now: UInt64 = 10_000_000_000
        func tokensLeft() -> Int { admission.policy.state(of: 0).body[0].remaining(at: now) }
        guard case .admitted = admission.admitBody(tenant: 0, model: "big", tokens: 100, now: now) else {
            Issue.record("refused")
            return
        }
        // The model's one request is spent: refused, and its tokens are not charged either.
        guard case .refused(let refusal, _, let retry) = admission.admitBody(tenant: 0, model: "big", tokens: 100, now: now) else {
            Issue.record("admitted")
            return
        }
        #expect(refusal.error.message.contains("for model big") && retry == 1_000_000_000)
        #expect(tokensLeft() == 900)
        // Another model only meets the tenant's token limit.
        guard case .admitted = admission.admitBody(tenant: 0, model: "small", tokens: 100, now: now) else {
            Issue.record("refused")
            return
        }
        #expect(tokensLeft() == 800)
    }

    // MARK: Through the gateway

    static func withTokenTenant(
        tokensPerMinute: Int = 60, burst: Int = 1_000, _ body: (GatewayHarness) async throws -> Void
    ) async throws {
        let keys = try AdmissionTests.keysFile(["sk-t"])
        defer { try? FileManager.default.removeItem(atPath: keys) }
        try await GatewayHarness.run(configure: { config, _ in
            var tenant = AdmissionTests.tenant("team-t", keysFile: keys, perMinute: 6_000)
            tenant.limits.tokensPerMinute = tokensPerMinute
            tenant.limits.tokenBurst = burst
            config.limits.tenants = [tenant]
        }, body)
    }

    static let headers = [("content-type", "application/json"), ("authorization", "Bearer sk-t")]

    static func tokensLeft(_ h: GatewayHarness) -> Int {
        let now = NIODeadline.now().uptimeNanoseconds
        return h.gateway.runtime.admission!.policy.state(of: 0).body[0].remaining(at: now)
    }

    @Test func everyAnswerIsChargedItsRealUsageStreamedOrNot() async throws {
        // One token every 10 s comes back: within the test, the counts are exact (at one a
        // second, a loaded machine's run outlasted a refill).
        try await Self.withTokenTenant(tokensPerMinute: 6) { h in
            let plain = try await h.request("/v1/chat/completions", headers: Self.headers, body: chatBody(maxTokens: 4))
            #expect(plain.status == 200)
            let answer = try #require(try JSONSerialization.jsonObject(with: Data(plain.text.utf8)) as? [String: Any])
            let used = try #require((answer["usage"] as? [String: Any])?["total_tokens"] as? Int)
            // Charged the estimate at admission (12 bytes → 3, + 4 for the message, + 4 to generate).
            #expect(plain.header("x-ratelimit-limit-tokens") == "6")
            #expect(plain.header("x-ratelimit-remaining-tokens") == "\(1_000 - 11)")
            #expect(plain.header("ratelimit-policy") == #""requests";q=6000;w=60, "tokens";q=6;w=60"#)
            try await QueueTests.waitUntil("settled") { Self.tokensLeft(h) == 1_000 - used }

            // A stream whose client did not ask for usage: the gateway asks, reads, and drops it.
            let streamed = try await h.request("/v1/chat/completions", headers: Self.headers, body: chatBody(stream: true, maxTokens: 4))
            #expect(streamed.status == 200)
            #expect(!streamed.text.contains(#""usage":{"#))
            #expect(streamed.text.hasSuffix("data: [DONE]\n\n"))
            #expect(streamed.text.components(separatedBy: "\n\ndata: {").count == 4)  // four token events
            try await QueueTests.waitUntil("settled") { Self.tokensLeft(h) == 1_000 - 2 * used }

            // A client that asked gets its usage chunk.
            let own = #"{"model":"sim-7b","stream":true,"stream_options":{"include_usage":true},"max_tokens":4,"messages":[{"role":"user","content":"hello sluice"}]}"#
            let asked = try await h.request("/v1/chat/completions", headers: Self.headers, body: own)
            #expect(asked.text.contains(#""total_tokens":\#(used)"#))
            try await QueueTests.waitUntil("settled") { Self.tokensLeft(h) == 1_000 - 3 * used }
        }
    }

    @Test func aRequestOverTheTokenLimitGets429WithTheTokenFields() async throws {
        try await Self.withTokenTenant(burst: 100) { h in
            // 90 to generate + 7 for the prompt: 97 of 100.
            #expect(try await h.request("/v1/chat/completions", headers: Self.headers, body: chatBody(maxTokens: 90)).status == 200)
            try await QueueTests.waitUntil("settled") { Self.tokensLeft(h) < 100 }
            let refused = try await h.request("/v1/chat/completions", headers: Self.headers, body: chatBody(maxTokens: 90))
            #expect(refused.status == 429)
            #expect(refused.text.contains(#""code":"rate_limit_exceeded""#) && refused.text.contains("tokens per minute"))
            #expect(refused.header("x-ratelimit-limit-tokens") == "60")
            #expect(refused.header("x-ratelimit-limit-requests") == "6000")
            #expect(Int(refused.header("retry-after") ?? "") ?? 0 >= 1)
            #expect(refused.header("x-ratelimit-reset-tokens")?.hasSuffix("s") == true)
            #expect(refused.header("x-replica-id") == nil)
            // Never passable: said so.
            let huge = try await h.request("/v1/chat/completions", headers: Self.headers, body: chatBody(maxTokens: 5_000))
            #expect(huge.status == 429 && huge.text.contains("more than tenant team-t's whole token limit"))
            let metrics = try await h.adminRequest("/metrics").text
            #expect(metrics.contains(#"sluice_admission_decisions_total{tenant="team-t",decision="refused_tokens"} 2"#))
            // Not JSON: 400 before any replica.
            #expect(try await h.request("/v1/chat/completions", headers: Self.headers, body: "model=sim").status == 400)
        }
    }
}
