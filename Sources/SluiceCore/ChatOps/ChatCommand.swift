/// A slash command's text (`/sluice drain 10.0.0.7:8000`), parsed. Pure: the gateway runs it.
public enum ChatCommand: Equatable, Sendable {
    /// Every pool: replicas in rotation, draining, ejected; in flight; waiting.
    case status
    /// Every scaled pool's latest decision.
    case scale
    /// Out of rotation (requests in flight finish); `pool` when the address is in several pools.
    case drain(replica: String, pool: String?)
    case undrain(replica: String, pool: String?)
    /// The last version of `model` takes `percent` of its sessions; the other versions share the rest
    /// in their current proportions.
    case canary(model: String, percent: Double)
    /// A tenant's configured limits and what it has in flight.
    case limits(tenant: String)
    case help

    public static let usage = """
    status · scale · drain <host:port> [pool] · undrain <host:port> [pool] · canary <model> <percent> · limits <tenant> · help
    """

    public static func parse(_ text: String) -> Result<ChatCommand, ChatCommandError> {
        let words = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).map(String.init)
        guard let verb = words.first?.lowercased() else { return .success(.help) }
        let arguments = Array(words.dropFirst())
        func expect(_ range: ClosedRange<Int>, _ form: String) -> ChatCommandError? {
            range.contains(arguments.count) ? nil : .usage("usage: \(form)")
        }
        switch verb {
        case "status", "scale", "help":
            if let error = expect(0...0, verb) { return .failure(error) }
            return .success(verb == "status" ? .status : verb == "scale" ? .scale : .help)
        case "drain", "undrain":
            if let error = expect(1...2, "\(verb) <host:port> [pool]") { return .failure(error) }
            let pool = arguments.count == 2 ? arguments[1] : nil
            return .success(verb == "drain" ? .drain(replica: arguments[0], pool: pool) : .undrain(replica: arguments[0], pool: pool))
        case "canary":
            if let error = expect(2...2, "canary <model> <percent>") { return .failure(error) }
            let text = arguments[1].hasSuffix("%") ? String(arguments[1].dropLast()) : arguments[1]
            guard let percent = Double(text), percent >= 0, percent <= 100 else {
                return .failure(.usage("the canary's share is a percent from 0 to 100, not \(arguments[1])"))
            }
            return .success(.canary(model: arguments[0], percent: percent))
        case "limits":
            if let error = expect(1...1, "limits <tenant>") { return .failure(error) }
            return .success(.limits(tenant: arguments[0]))
        default:
            return .failure(.unknown(verb))
        }
    }

    /// The weights that give the last of `weights` `percent` of the traffic and the others the rest,
    /// in their current proportions (equal shares when they are all zero). Nil for fewer than two versions.
    public static func canaryWeights(_ weights: [Double], percent: Double) -> [Double]? {
        guard weights.count >= 2 else { return nil }
        let others = weights.dropLast()
        let total = others.reduce(0, +)
        let rest = 100 - percent
        var result = others.map { total > 0 ? rest * $0 / total : rest / Double(others.count) }
        result.append(percent)
        return result
    }
}

public enum ChatCommandError: Error, Equatable, Sendable, CustomStringConvertible {
    case unknown(String)
    case usage(String)

    public var description: String {
        switch self {
        case .unknown(let verb): "unknown command \"\(verb)\"; try: \(ChatCommand.usage)"
        case .usage(let text): text
        }
    }
}
