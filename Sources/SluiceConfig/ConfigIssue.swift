/// One problem in a configuration file, located by key path and line so a person can fix it
/// without guessing: `pools[0].replicas[1]: "127.0.0.1:99999" is not a host:port (line 9)`.
public struct ConfigIssue: Sendable, Equatable, CustomStringConvertible {
    public var path: String
    public var line: Int?
    public var message: String

    public init(path: String, line: Int?, message: String) {
        self.path = path
        self.line = line
        self.message = message
    }

    public var description: String {
        let location = path.isEmpty ? "" : "\(path): "
        let lineText = line.map { " (line \($0))" } ?? ""
        return "\(location)\(message)\(lineText)"
    }
}

/// Every issue found in one file; decoding does not stop at the first.
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    public var issues: [ConfigIssue]

    public init(issues: [ConfigIssue]) {
        self.issues = issues
    }

    public var description: String {
        issues.map(\.description).joined(separator: "\n")
    }
}

extension ConfigError {
    /// What a command prints for a file that did not validate: the count, then each issue.
    public func report(file: String) -> String {
        var message = "\(file): \(issues.count) problem\(issues.count == 1 ? "" : "s")\n"
        for issue in issues { message += "  \(issue)\n" }
        return message
    }
}
