import Crypto

/// Who may run chat commands: Slack's request signature (`X-Slack-Signature: v0=<hex HMAC-SHA256
/// of "v0:<timestamp>:<raw body>">` with the app's signing secret, and `X-Slack-Request-Timestamp`
/// within five minutes of now, against replays), or Mattermost's slash-command token
/// (`Authorization: Token <token>`; Mattermost does not sign its requests). Both compared in
/// constant time. Pure: the caller passes the clock.
enum ChatSignature {
    enum Failure: Error, Equatable, CustomStringConvertible {
        case unsigned
        case stale
        case mismatch

        var description: String {
            switch self {
            case .unsigned: "the request carries no signature (X-Slack-Signature and X-Slack-Request-Timestamp) or token"
            case .stale: "the request's timestamp is more than five minutes from now"
            case .mismatch: "the request's signature does not match"
            }
        }
    }

    static let window: Int64 = 300

    /// Checks a Slack-signed request. `now` in seconds since 1970.
    static func verifySlack(secret: [UInt8], timestamp: String?, signature: String?, body: [UInt8], now: Int64) throws(Failure) {
        guard let timestamp, let signature, let sent = Int64(timestamp), signature.hasPrefix("v0="),
              let mac = hexBytes(signature.dropFirst(3)), mac.count == SHA256.byteCount else {
            throw .unsigned
        }
        guard abs(now - sent) <= window else { throw .stale }
        let signed = Array("v0:\(timestamp):".utf8) + body
        guard HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: signed, using: SymmetricKey(data: secret)) else {
            throw .mismatch
        }
    }

    /// Checks a Mattermost request's `Authorization: Token <token>`.
    static func verifyMattermost(token: [UInt8], authorization: String?) throws(Failure) {
        guard let authorization, authorization.hasPrefix("Token ") else { throw .unsigned }
        guard constantTimeEqual(Array(authorization.dropFirst("Token ".count).utf8), token) else { throw .mismatch }
    }

    /// The signature Slack would send (for tests and tools that call the endpoint).
    static func slackSignature(secret: [UInt8], timestamp: String, body: [UInt8]) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Array("v0:\(timestamp):".utf8) + body, using: SymmetricKey(data: secret))
        return "v0=" + mac.map { byte in (byte < 16 ? "0" : "") + String(byte, radix: 16) }.joined()
    }

    /// Equal length and bytes, in time that depends on the length only.
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }

    private static func hexBytes(_ text: Substring) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        var index = 0
        while index < digits.count {
            guard let high = hexValue(digits[index]), let low = hexValue(digits[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        return bytes
    }

    private static func hexValue(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): digit - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
