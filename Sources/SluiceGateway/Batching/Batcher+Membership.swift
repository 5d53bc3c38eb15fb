import NIOCore
import SluiceCore
import SluiceGRPC

/// Whether a request read whole can join a batch: a well-formed member joins; a malformed one is
/// refused on its own (it must not fail the others); a form the batcher does not merge (binary
/// extension, token-array inputs) or one too large to parse as a tree (over `maxValues` values)
/// goes alone and the replica judges it.
extension Batcher {
    enum Membership {
        case join(Item)
        case refuse(GatewayError)
        case alone
    }

    static func membership(_ kind: Kind, _ body: ByteBuffer, maxValues: Int) -> Membership {
        if kind == .grpcInfer { return grpcMembership(body) }
        let parsed = body.withUnsafeReadableBytes { raw in
            Result { () throws(JSONFieldScanner.Failure) -> JSONValue? in
                guard try JSONFieldScanner.valueCount(in: raw, atMost: maxValues) <= maxValues else { return nil }
                return try JSONValue.parse(Array(raw))
            }
        }
        let value: JSONValue
        switch parsed {
        case .success(let tree?): value = tree
        case .success(nil): return .alone
        case .failure(let failure): return .refuse(.badJSON(failure.description))
        }
        func invalid(_ message: String) -> Membership {
            .refuse(GatewayError(status: .badRequest, message: message, type: "invalid_request_error", code: "invalid_request"))
        }
        switch kind {
        case .embeddings:
            do throws(EmbeddingsBatch.Refusal) {
                return .join(.embeddings(try EmbeddingsBatch.member(value)))
            } catch {
                switch error {
                case .notAnObject: return invalid("An embeddings request is a JSON object.")
                case .noInput: return invalid("An embeddings request needs `input`.")
                case .emptyInput: return invalid("`input` must not be empty.")
                case .unsupportedInput: return .alone  // the replica says what it thinks of it
                }
            }
        case .grpcInfer:
            return .alone
        case .infer:
            do throws(InferBatch.Refusal) {
                return .join(.infer(try InferBatch.member(value)))
            } catch {
                switch error {
                case .notAnObject: return invalid("An inference request is a JSON object.")
                case .noInputs: return invalid("An inference request needs a non-empty `inputs` list.")
                case .badInput(let name): return invalid("Input \(name) needs a name, a datatype, a shape and data of that shape.")
                case .inconsistentRows: return invalid("Every input of an inference request must have the same first dimension.")
                case .binaryExtension: return .alone
                }
            }
        }
    }

    /// A gRPC `ModelInfer` call: one uncompressed message that decodes; compressed or streamed
    /// calls go alone, the replica judges them.
    private static func grpcMembership(_ body: ByteBuffer) -> Membership {
        guard body.withUnsafeReadableBytes({ GRPCMessage.messageRange(in: $0) }) != nil else { return .alone }
        guard let request = body.withUnsafeReadableBytes({ GRPCMessage.decode(Inference_ModelInferRequest.self, from: $0) }) else {
            return .refuse(GatewayError(status: .badRequest, message: "The ModelInfer message does not decode.", type: "invalid_request_error", code: "invalid_request"))
        }
        do throws(GRPCInferBatch.Refusal) {
            guard let member = try GRPCInferBatch.member(request) else { return .alone }
            return .join(.grpcInfer(member))
        } catch {
            return .refuse(GatewayError(status: .badRequest, message: "\(error).", type: "invalid_request_error", code: "invalid_request"))
        }
    }
}
