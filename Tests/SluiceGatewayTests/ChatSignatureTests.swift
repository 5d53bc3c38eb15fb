import Testing
@testable import SluiceGateway

@Suite struct ChatSignatureTests {
    /// Slack's own worked example (api.slack.com, "Verifying requests from Slack").
    static let secret = Array("8f742231b10e8888abcd99yyyzzz85a5".utf8)
    static let body = Array("token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c".utf8)
    static let timestamp = "1531420618"
    static let signature = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"

    @Test func slacksExampleVerifiesAndWeSignAlike() throws {
        try ChatSignature.verifySlack(secret: Self.secret, timestamp: Self.timestamp, signature: Self.signature, body: Self.body, now: 1_531_420_618 + 299)
        #expect(ChatSignature.slackSignature(secret: Self.secret, timestamp: Self.timestamp, body: Self.body) == Self.signature)
    }

    @Test func anOldOrAlteredOrUnsignedRequestIsRefused() {
        func verify(timestamp: String? = Self.timestamp, signature: String? = Self.signature, body: [UInt8] = Self.body, now: Int64 = 1_531_420_618) -> ChatSignature.Failure? {
            do {
                try ChatSignature.verifySlack(secret: Self.secret, timestamp: timestamp, signature: signature, body: body, now: now)
                return nil
            } catch {
                return error
            }
        }
        #expect(verify(now: 1_531_420_618 + 301) == .stale)
        #expect(verify(now: 1_531_420_618 - 301) == .stale)
        #expect(verify(body: Self.body + Array("&text=drain".utf8)) == .mismatch)
        #expect(verify(timestamp: "1531420619", now: 1_531_420_619) == .mismatch)
        #expect(verify(signature: "v0=" + String(repeating: "0", count: 64)) == .mismatch)
        #expect(verify(signature: nil) == .unsigned)
        #expect(verify(signature: "v1=abc") == .unsigned)
        #expect(verify(timestamp: nil) == .unsigned)
    }

    @Test func mattermostsTokenIsComparedWhole() throws {
        let token = Array("mm-token-123".utf8)
        try ChatSignature.verifyMattermost(token: token, authorization: "Token mm-token-123")
        #expect(throws: ChatSignature.Failure.mismatch) { try ChatSignature.verifyMattermost(token: token, authorization: "Token mm-token-12") }
        #expect(throws: ChatSignature.Failure.mismatch) { try ChatSignature.verifyMattermost(token: token, authorization: "Token mm-token-124") }
        #expect(throws: ChatSignature.Failure.unsigned) { try ChatSignature.verifyMattermost(token: token, authorization: "Bearer mm-token-123") }
        #expect(ChatSignature.constantTimeEqual([1, 2], [1, 2]) && !ChatSignature.constantTimeEqual([1, 2], [1, 3]) && !ChatSignature.constantTimeEqual([1], [1, 2]))
    }
}
