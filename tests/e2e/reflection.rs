//! A reflection-only client (like grpcurl): discovers the API through server reflection and
//! calls it with dynamic messages built from JSON, with no proto files.

use std::time::Duration;

use hoop_rs::{ADMIN_TOKEN, Backend, Gateway, e2e};
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;
use tonic_reflection::pb::v1 as refl;
use tonic_reflection::pb::v1alpha as refl_alpha;

e2e!(a_reflection_only_client_can_create_a_connection);

/// Encodes and decodes dynamic messages of a known type.
struct DynamicCodec(MessageDescriptor);

struct DynEncoder;
struct DynDecoder(MessageDescriptor);

impl Encoder for DynEncoder {
    type Item = DynamicMessage;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: DynamicMessage,
        dst: &mut EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        item.encode(dst)
            .map_err(|e| tonic::Status::internal(e.to_string()))
    }
}

impl Decoder for DynDecoder {
    type Item = DynamicMessage;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<DynamicMessage>, tonic::Status> {
        DynamicMessage::decode(self.0.clone(), src)
            .map(Some)
            .map_err(|e| tonic::Status::internal(e.to_string()))
    }
}

impl Codec for DynamicCodec {
    type Encode = DynamicMessage;
    type Decode = DynamicMessage;
    type Encoder = DynEncoder;
    type Decoder = DynDecoder;
    fn encoder(&mut self) -> DynEncoder {
        DynEncoder
    }
    fn decoder(&mut self) -> DynDecoder {
        DynDecoder(self.0.clone())
    }
}

/// One reflection request, one answer.
async fn ask(
    client: &mut refl::server_reflection_client::ServerReflectionClient<Channel>,
    request: refl::server_reflection_request::MessageRequest,
) -> refl::server_reflection_response::MessageResponse {
    let req = refl::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let mut stream = client
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    stream
        .message()
        .await
        .unwrap()
        .unwrap()
        .message_response
        .unwrap()
}

/// Lists the services, then fetches the file defining `symbol` and, as grpcurl does, every
/// file it imports, by name.
async fn discover(channel: Channel, symbol: &str) -> (Vec<String>, DescriptorPool) {
    use refl::server_reflection_request::MessageRequest as Req;
    use refl::server_reflection_response::MessageResponse as Resp;
    let mut client = refl::server_reflection_client::ServerReflectionClient::new(channel);
    let Resp::ListServicesResponse(list) = ask(&mut client, Req::ListServices(String::new())).await
    else {
        panic!("expected a service list")
    };
    let services = list.service.into_iter().map(|s| s.name).collect();

    let mut files: std::collections::BTreeMap<String, prost_types::FileDescriptorProto> =
        Default::default();
    let mut wanted = vec![Req::FileContainingSymbol(symbol.to_owned())];
    while let Some(request) = wanted.pop() {
        let Resp::FileDescriptorResponse(fd) = ask(&mut client, request).await else {
            panic!("expected file descriptors")
        };
        for bytes in fd.file_descriptor_proto {
            let file = prost_types::FileDescriptorProto::decode(bytes.as_slice()).unwrap();
            for dep in &file.dependency {
                if !files.contains_key(dep) {
                    wanted.push(Req::FileByFilename(dep.clone()));
                }
            }
            files.insert(file.name().to_owned(), file);
        }
    }
    // Add files once their imports are in.
    let mut pool = DescriptorPool::new();
    let mut pending: Vec<_> = files.into_values().collect();
    while !pending.is_empty() {
        let before = pending.len();
        pending.retain(|f| pool.add_file_descriptor_proto(f.clone()).is_err());
        assert!(pending.len() < before, "unresolvable descriptors");
    }
    (services, pool)
}

async fn call(
    channel: Channel,
    pool: &DescriptorPool,
    method: &str,
    json: serde_json::Value,
) -> Result<serde_json::Value, tonic::Status> {
    let (service, name) = method.rsplit_once('/').unwrap();
    let svc = pool.get_service_by_name(service).unwrap();
    let m = svc.methods().find(|m| m.name() == name).unwrap();
    let input = DynamicMessage::deserialize(m.input(), json).unwrap();
    let mut req = tonic::Request::new(input);
    req.metadata_mut().insert(
        "authorization",
        format!("Bearer {ADMIN_TOKEN}").parse().unwrap(),
    );
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path = PathAndQuery::try_from(format!("/{service}/{name}")).unwrap();
    let resp = grpc
        .unary(req, path, DynamicCodec(m.output()))
        .await?
        .into_inner();
    Ok(serde_json::to_value(&resp).unwrap())
}

async fn a_reflection_only_client_can_create_a_connection(backend: Backend) {
    let gw = Gateway::start(backend).await;
    let channel = gw.channel().await;
    let (services, pool) = discover(channel.clone(), "hoop.v1.ConnectionService").await;
    for expected in [
        "hoop.v1.ConnectionService",
        "hoop.v1.PluginService",
        "hoop.v1.UserService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    ] {
        assert!(
            services.iter().any(|s| s == expected),
            "{expected} missing from {services:?}"
        );
    }

    let created = call(
        channel.clone(),
        &pool,
        "hoop.v1.ConnectionService/CreateConnection",
        serde_json::json!({"connection": {"name": "via-reflection", "type": "command", "command": ["bash"]}}),
    )
    .await
    .unwrap();
    assert_eq!(created["name"], "via-reflection");
    let flags: Vec<(String, bool)> = created["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p.get("active").and_then(|a| a.as_bool()).unwrap_or(false),
            )
        })
        .collect();
    assert_eq!(
        flags,
        [
            ("review".into(), false),
            ("dlp".into(), false),
            ("slack".into(), false),
            ("audit".into(), true)
        ]
    );

    let err = call(
        channel.clone(),
        &pool,
        "hoop.v1.ConnectionService/CreateConnection",
        serde_json::json!({"connection": {"name": "bad", "type": "command", "command": ["bash"], "redactTypes": ["NOPE"]}}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().starts_with("connection.redact_types[0]"),
        "{}",
        err.message()
    );

    // v1alpha answers too (older grpcurl and tools use it).
    let mut alpha = refl_alpha::server_reflection_client::ServerReflectionClient::new(channel);
    let req = refl_alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            refl_alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let mut stream = tokio::time::timeout(
        Duration::from_secs(10),
        alpha.server_reflection_info(tokio_stream::iter(vec![req])),
    )
    .await
    .unwrap()
    .unwrap()
    .into_inner();
    let resp = stream.message().await.unwrap().unwrap();
    assert!(matches!(
        resp.message_response,
        Some(refl_alpha::server_reflection_response::MessageResponse::ListServicesResponse(_))
    ));
}
