import SluiceCore
import Yams

/// Collects issues while a YAML tree is read. A reference type so nested readers share it.
final class Diagnostics {
    var issues: [ConfigIssue] = []

    func report(_ reader: NodeReader, _ message: String) {
        issues.append(ConfigIssue(path: reader.path, line: reader.line, message: message))
    }
}

/// A YAML node plus the key path that leads to it, so every complaint can say where it is.
struct NodeReader {
    let node: Node
    let path: String
    let diagnostics: Diagnostics

    var line: Int? { node.mark?.line }

    func child(key: String, node: Node) -> NodeReader {
        NodeReader(node: node, path: path.isEmpty ? key : "\(path).\(key)", diagnostics: diagnostics)
    }

    func report(_ message: String) {
        diagnostics.report(self, message)
    }

    /// The mapping's entries by key, reporting unknown and duplicate keys (both are errors: a
    /// misspelt key silently ignored is a setting silently not applied).
    func mapping(allowed: [String]) -> [String: NodeReader]? {
        guard case .mapping(let mapping) = node else {
            report("expected a mapping with keys \(allowed.joined(separator: ", "))")
            return nil
        }
        var entries: [String: NodeReader] = [:]
        for (keyNode, valueNode) in mapping {
            guard case .scalar(let keyScalar) = keyNode else {
                diagnostics.issues.append(ConfigIssue(path: path, line: keyNode.mark?.line, message: "keys must be plain strings"))
                continue
            }
            let key = keyScalar.string
            let entry = child(key: key, node: valueNode)
            if !allowed.contains(key) {
                let hint = closest(to: key, in: allowed).map { " (did you mean \"\($0)\"?)" } ?? ""
                diagnostics.issues.append(ConfigIssue(
                    path: entry.path, line: keyNode.mark?.line,
                    message: "unknown key\(hint); allowed here: \(allowed.joined(separator: ", "))"))
            } else if entries[key] != nil {
                diagnostics.issues.append(ConfigIssue(path: entry.path, line: keyNode.mark?.line, message: "duplicate key"))
            } else {
                entries[key] = entry
            }
        }
        return entries
    }

    func sequence() -> [NodeReader]? {
        guard case .sequence(let sequence) = node else {
            report("expected a list")
            return nil
        }
        return sequence.enumerated().map { index, element in
            NodeReader(node: element, path: "\(path)[\(index)]", diagnostics: diagnostics)
        }
    }

    func string() -> String? {
        guard case .scalar(let scalar) = node else {
            report("expected a string")
            return nil
        }
        if scalar.style == .plain, scalar.string == "~" || scalar.string == "null" || scalar.string.isEmpty {
            report("expected a string, found null")
            return nil
        }
        return scalar.string
    }

    func int(in range: ClosedRange<Int>) -> Int? {
        guard case .scalar(let scalar) = node, let value = Int(scalar.string) else {
            report("expected an integer")
            return nil
        }
        guard range.contains(value) else {
            report("\(value) is out of range \(range.lowerBound)...\(range.upperBound)")
            return nil
        }
        return value
    }

    func double(in range: ClosedRange<Double>) -> Double? {
        guard case .scalar(let scalar) = node, let value = Double(scalar.string) else {
            report("expected a number")
            return nil
        }
        guard range.contains(value) else {
            report("\(value) is out of range \(range.lowerBound)...\(range.upperBound)")
            return nil
        }
        return value
    }

    func bool() -> Bool? {
        guard let value = node.bool, case .scalar = node else {
            report("expected true or false")
            return nil
        }
        return value
    }

    func duration(atLeast minimum: Duration = .zero) -> Duration? {
        guard let text = string() else { return nil }
        guard let value = ConfigValues.duration(text) else {
            report("\"\(text)\" is not a duration (use a unit: 250ms, 2s, 5m)")
            return nil
        }
        guard value >= minimum else {
            report("\"\(text)\" is below the minimum \(minimum)")
            return nil
        }
        return value
    }

    func byteSize(in range: ClosedRange<Int>) -> Int? {
        guard let text = string() else { return nil }
        guard let value = ConfigValues.byteSize(text) else {
            report("\"\(text)\" is not a byte size (an integer, or with KiB/MiB/GiB, 1024-based, or KB/MB/GB, 1000-based)")
            return nil
        }
        guard range.contains(value) else {
            report("\(value) bytes is out of range \(range.lowerBound)...\(range.upperBound)")
            return nil
        }
        return value
    }

    func hostPort(allowZeroPort: Bool = false) -> ReplicaID? {
        guard let text = string() else { return nil }
        guard let value = ConfigValues.hostPort(text, allowZeroPort: allowZeroPort) else {
            report("\"\(text)\" is not a host:port")
            return nil
        }
        return value
    }

    func strings() -> [String]? {
        guard let items = sequence() else { return nil }
        let values = items.compactMap { $0.string() }
        return values.count == items.count ? values : nil
    }

    func oneOf(_ choices: [String]) -> String? {
        guard let text = string() else { return nil }
        guard choices.contains(text) else {
            report("\"\(text)\" is not one of \(choices.joined(separator: ", "))")
            return nil
        }
        return text
    }
}

/// The allowed key within edit distance 2 of a misspelt one, for a helpful hint.
private func closest(to key: String, in allowed: [String]) -> String? {
    func distance(_ a: [Character], _ b: [Character]) -> Int {
        var previous = Array(0...b.count)
        for (i, ca) in a.enumerated() {
            var current = [i + 1]
            for (j, cb) in b.enumerated() {
                current.append(Swift.min(previous[j + 1] + 1, current[j] + 1, previous[j] + (ca == cb ? 0 : 1)))
            }
            previous = current
        }
        return previous[b.count]
    }
    let best = allowed.map { ($0, distance(Array(key), Array($0))) }.min { $0.1 < $1.1 }
    return best.flatMap { $0.1 <= 2 ? $0.0 : nil }
}
