/// Merging Open Inference Protocol (V2) `infer` requests for one model into one, along the
/// first dimension, and splitting the answer back by each request's rows (issue 7).
///
/// Requests join when their inputs have the same names, datatypes, trailing dimensions and
/// parameters, and the requests the same `parameters` and requested `outputs`; `id`s may differ
/// (each member gets its own back). Tensor data may be flat or nested (row-major); the merged
/// request's is flat. A request using the binary tensor extension is sent alone, and so is a
/// batch whose answer has an output that is not one row per input row (the answer cannot be
/// split: `split` says nil).
public enum InferBatch {
    public enum Refusal: Error, Equatable, Sendable {
        case notAnObject
        case noInputs
        /// An input without name, datatype, a shape of at least one dimension, or data that
        /// matches the shape.
        case badInput(String)
        case inconsistentRows
        case binaryExtension
    }

    public struct Tensor: Sendable, Equatable {
        public let name: String
        /// The input object without `shape` and `data` (datatype, parameters).
        public let header: JSONValue
        public let trailing: [Int]
        /// Flat, row-major.
        public let data: [JSONValue]
    }

    public struct Member: Sendable, Equatable {
        public let body: JSONValue
        public let rows: Int
        /// Sorted by name.
        public let tensors: [Tensor]
        public let joinKey: [UInt8]
    }

    public struct Span: Sendable, Equatable {
        public var offset: Int
        public var rows: Int
        public var id: JSONValue?
    }

    public static func member(_ body: JSONValue) throws(Refusal) -> Member {
        guard case .object = body else { throw .notAnObject }
        guard let inputs = body["inputs"]?.array, !inputs.isEmpty else { throw .noInputs }
        if hasBinaryData(body["parameters"]) || hasBinaryData(body["outputs"]) { throw .binaryExtension }
        var tensors: [Tensor] = []
        var rows: Int?
        for input in inputs {
            if hasBinaryData(input["parameters"]) { throw .binaryExtension }
            guard let name = input["name"]?.string, input["datatype"]?.string != nil,
                  let shape = input["shape"]?.array?.compactMap(\.int), shape.count == input["shape"]?.array?.count, let first = shape.first,
                  first >= 0, shape.allSatisfy({ $0 >= 0 }), let data = input["data"]
            else { throw .badInput(input["name"]?.string ?? "(unnamed)") }
            let flat = flatten(data)
            let trailing = Array(shape.dropFirst())
            guard flat.count == first * trailing.reduce(1, *) else { throw .badInput(name) }
            if let rows, rows != first { throw .inconsistentRows }
            rows = first
            tensors.append(Tensor(name: name, header: input.removing("shape").removing("data"), trailing: trailing, data: flat))
        }
        tensors.sort { $0.name < $1.name }
        var key: [UInt8] = []
        body.removing("inputs").removing("id").write(into: &key)
        for tensor in tensors {
            key.append(0)
            tensor.header.write(into: &key)
            JSONValue.array(tensor.trailing.map { .number(String($0)) }).write(into: &key)
        }
        return Member(body: body, rows: rows ?? 0, tensors: tensors, joinKey: key)
    }

    public static func merge(_ members: [Member]) -> (body: JSONValue, spans: [Span]) {
        precondition(!members.isEmpty && members.allSatisfy { $0.joinKey == members[0].joinKey })
        var spans: [Span] = []
        var offset = 0
        for member in members {
            spans.append(Span(offset: offset, rows: member.rows, id: member.body["id"]))
            offset += member.rows
        }
        let inputs: [JSONValue] = members[0].tensors.indices.map { index in
            let tensor = members[0].tensors[index]
            let data = members.flatMap { $0.tensors[index].data }
            return tensor.header
                .setting("shape", to: .array(([offset] + tensor.trailing).map { .number(String($0)) }))
                .setting("data", to: .array(data))
        }
        return (members[0].body.removing("id").setting("inputs", to: .array(inputs)), spans)
    }

    /// Each member's answer; nil when an output is not one row per input row.
    public static func split(_ answer: JSONValue, spans: [Span]) -> [JSONValue]? {
        guard let outputs = answer["outputs"]?.array else { return nil }
        let total = spans.reduce(0) { $0 + $1.rows }
        var sliced: [[JSONValue]] = spans.map { _ in [] }
        for output in outputs {
            guard let shape = output["shape"]?.array?.compactMap(\.int), shape.first == total, let data = output["data"] else { return nil }
            let trailing = Array(shape.dropFirst())
            let width = trailing.reduce(1, *)
            let flat = flatten(data)
            guard flat.count == total * width else { return nil }
            for (index, span) in spans.enumerated() {
                let part = Array(flat[(span.offset * width)..<((span.offset + span.rows) * width)])
                sliced[index].append(output
                    .setting("shape", to: .array(([span.rows] + trailing).map { .number(String($0)) }))
                    .setting("data", to: .array(part)))
            }
        }
        return spans.enumerated().map { index, span in
            var part = answer.setting("outputs", to: .array(sliced[index]))
            part = span.id.map { part.setting("id", to: $0) } ?? part.removing("id")
            return part
        }
    }

    static func flatten(_ value: JSONValue) -> [JSONValue] {
        guard case .array(let items) = value else { return [value] }
        return items.flatMap { item -> [JSONValue] in
            if case .array = item { return flatten(item) }
            return [item]
        }
    }

    /// The binary tensor extension's markers (`binary_data`, `binary_data_size`, `binary_data_output`).
    static func hasBinaryData(_ value: JSONValue?) -> Bool {
        switch value {
        case .object(let members)?:
            return members.contains { $0.key.hasPrefix("binary_data") || hasBinaryData($0.value) }
        case .array(let items)?:
            return items.contains { hasBinaryData($0) }
        default:
            return false
        }
    }
}
