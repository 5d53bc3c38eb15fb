import NIOCore
import SluiceGRPC
import SwiftProtobuf

/// The model an Open Inference Protocol gRPC call is for, so pools match it by `models` as they
/// match a REST body's `model`: `ModelInfer`'s `model_name`, `ModelReady`'s and
/// `ModelMetadata`'s `name`; nil for server-wide calls and anything that does not decode.
enum GRPCRouting {
    static let service = "/inference.GRPCInferenceService/"

    static func model(path: String, body: ByteBuffer) -> String? {
        guard path.hasPrefix(service), let message = GRPCMessage.single(body.readableBytesView) else { return nil }
        switch path.dropFirst(service.count) {
        case "ModelInfer":
            return (try? Inference_ModelInferRequest(serializedBytes: Array(message)))?.modelName
        case "ModelReady", "ModelMetadata":
            return (try? Inference_ModelNameRequest(serializedBytes: Array(message)))?.name
        default:
            return nil
        }
    }
}
