import Foundation
import SwiftProtobuf

/// Open Inference Protocol `ModelInfer` calls merged into one and the answer split back, exactly
/// (the REST `InferBatch`'s rules on the protobuf messages): members join when everything but
/// their rows is the same (model, version, parameters, each input's name, datatype, trailing
/// shape and data form, the outputs asked for); the merged call's inputs are the members' rows
/// in order; each output's first dimension must be the total rows, and each member gets its
/// rows of it. Pure: no I/O, so merge and split are tested exactly.
public enum GRPCInferBatch {
    public struct Member: Sendable {
        public let request: Inference_ModelInferRequest
        /// The first dimension every input shares.
        public let rows: Int
        /// Equal for members that can go together.
        public let joinKey: [UInt8]
    }

    public enum Refusal: Error, Equatable, CustomStringConvertible {
        case noInputs
        case badInput(String)
        case inconsistentRows

        public var description: String {
            switch self {
            case .noInputs: "ModelInfer needs at least one input"
            case .badInput(let name): "input \(name) needs a datatype, a shape and data of that shape"
            case .inconsistentRows: "every input of a ModelInfer call must have the same first dimension"
            }
        }
    }

    /// A call as a batch member; nil when it cannot be merged (raw BYTES, which the gateway does
    /// not split, or data in neither form) and goes alone.
    public static func member(_ request: Inference_ModelInferRequest) throws(Refusal) -> Member? {
        guard !request.inputs.isEmpty else { throw .noInputs }
        let raw = !request.rawInputContents.isEmpty
        if raw, request.rawInputContents.count != request.inputs.count { throw .badInput("(raw_input_contents)") }
        var rows: Int?
        for (index, input) in request.inputs.enumerated() {
            guard let first = input.shape.first, first >= 1, input.shape.allSatisfy({ $0 >= 0 }), !input.datatype.isEmpty else {
                throw .badInput(input.name)
            }
            if let rows, rows != Int(first) { throw .inconsistentRows }
            rows = Int(first)
            let elements = input.shape.reduce(1) { $0 * Int($1) }
            if raw {
                guard let size = elementSize(input.datatype) else { return nil }
                guard request.rawInputContents[index].count == elements * size else { throw .badInput(input.name) }
            } else {
                guard input.hasContents, let count = elementCount(input.contents) else { return nil }
                guard count == elements else { throw .badInput(input.name) }
            }
        }
        var shape = request
        shape.id = ""
        shape.rawInputContents = []
        for index in shape.inputs.indices {
            shape.inputs[index].shape[0] = 0
            shape.inputs[index].contents = Inference_InferTensorContents()
            shape.inputs[index].clearContents()
        }
        var options = BinaryEncodingOptions()
        options.useDeterministicOrdering = true
        let key = (try? shape.serializedBytes(options: options) as [UInt8]) ?? []
        return Member(request: request, rows: rows ?? 1, joinKey: (raw ? [1] : [0]) + key)
    }

    /// One call with every member's rows, in order.
    public static func merge(_ members: [Member]) -> Inference_ModelInferRequest {
        var merged = members[0].request
        merged.id = ""
        let total = members.reduce(0) { $0 + $1.rows }
        for index in merged.inputs.indices {
            merged.inputs[index].shape[0] = Int64(total)
            if merged.rawInputContents.isEmpty {
                merged.inputs[index].contents = members.dropFirst().reduce(merged.inputs[index].contents) { joined, member in
                    append(joined, member.request.inputs[index].contents)
                }
            } else {
                merged.rawInputContents[index] = members.dropFirst().reduce(merged.rawInputContents[index]) { $0 + $1.request.rawInputContents[index] }
            }
        }
        return merged
    }

    /// Each member's answer, or nil when the answer's outputs do not have the batch's rows.
    public static func split(_ response: Inference_ModelInferResponse, members: [Member]) -> [Inference_ModelInferResponse]? {
        let total = members.reduce(0) { $0 + $1.rows }
        let raw = !response.rawOutputContents.isEmpty
        if raw, response.rawOutputContents.count != response.outputs.count { return nil }
        var perRow: [Int] = []
        for (index, output) in response.outputs.enumerated() {
            guard let first = output.shape.first, Int(first) == total else { return nil }
            let elements = output.shape.dropFirst().reduce(1) { $0 * Int($1) }
            if raw {
                guard let size = elementSize(output.datatype), response.rawOutputContents[index].count == total * elements * size else { return nil }
                perRow.append(elements * size)
            } else {
                guard let count = elementCount(output.contents), count == total * elements else { return nil }
                perRow.append(elements)
            }
        }
        var parts: [Inference_ModelInferResponse] = []
        var start = 0
        for member in members {
            var part = response
            part.id = member.request.id
            for index in part.outputs.indices {
                part.outputs[index].shape[0] = Int64(member.rows)
                let range = (start * perRow[index])..<((start + member.rows) * perRow[index])
                if raw {
                    part.rawOutputContents[index] = response.rawOutputContents[index].subdata(in: range)
                } else {
                    part.outputs[index].contents = slice(response.outputs[index].contents, range)
                }
            }
            parts.append(part)
            start += member.rows
        }
        return parts
    }

    /// Bytes per element in raw form; nil for BYTES (length-prefixed) and unknown types.
    static func elementSize(_ datatype: String) -> Int? {
        switch datatype {
        case "BOOL", "UINT8", "INT8": 1
        case "UINT16", "INT16", "FP16", "BF16": 2
        case "UINT32", "INT32", "FP32": 4
        case "UINT64", "INT64", "FP64": 8
        default: nil
        }
    }

    /// The elements in the one typed field that holds them; nil when none or several do.
    static func elementCount(_ contents: Inference_InferTensorContents) -> Int? {
        let counts = [
            contents.boolContents.count, contents.intContents.count, contents.int64Contents.count, contents.uintContents.count,
            contents.uint64Contents.count, contents.fp32Contents.count, contents.fp64Contents.count, contents.bytesContents.count,
        ].filter { $0 > 0 }
        return counts.count == 1 ? counts[0] : nil
    }

    static func append(_ a: Inference_InferTensorContents, _ b: Inference_InferTensorContents) -> Inference_InferTensorContents {
        var joined = a
        joined.boolContents += b.boolContents
        joined.intContents += b.intContents
        joined.int64Contents += b.int64Contents
        joined.uintContents += b.uintContents
        joined.uint64Contents += b.uint64Contents
        joined.fp32Contents += b.fp32Contents
        joined.fp64Contents += b.fp64Contents
        joined.bytesContents += b.bytesContents
        return joined
    }

    static func slice(_ contents: Inference_InferTensorContents, _ range: Range<Int>) -> Inference_InferTensorContents {
        var part = Inference_InferTensorContents()
        func cut<T>(_ values: [T]) -> [T] { values.isEmpty ? [] : Array(values[range]) }
        part.boolContents = cut(contents.boolContents)
        part.intContents = cut(contents.intContents)
        part.int64Contents = cut(contents.int64Contents)
        part.uintContents = cut(contents.uintContents)
        part.uint64Contents = cut(contents.uint64Contents)
        part.fp32Contents = cut(contents.fp32Contents)
        part.fp64Contents = cut(contents.fp64Contents)
        part.bytesContents = cut(contents.bytesContents)
        return part
    }
}
