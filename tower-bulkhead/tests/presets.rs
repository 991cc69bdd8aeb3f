//! One way from a config to a layer, and the answer modes chosen on the builder.
#![cfg(all(feature = "serde", feature = "http"))]

use std::time::Duration;

use tower::{Service, ServiceBuilder, ServiceExt};
use tower_bulkhead::{
    BulkheadConfig, BulkheadLayer, KeyedBulkheadConfig, KeyedBulkheadLayer, Rejected,
};

fn config() -> KeyedBulkheadConfig {
    serde_json::from_str(
        r#"{"name": "agents", "default": {"max_concurrent": 3},
            "bulkheads": {"research": {"max_concurrent": 1}}}"#,
    )
    .unwrap()
}

#[tokio::test(start_paused = true)]
async fn keyed_config_on_the_builder_gives_what_from_config_gives() {
    let config = config();
    #[allow(clippy::ptr_arg)] // the key function takes the request, a `String`, by reference
    fn key(s: &String) -> String {
        s.clone()
    }
    let plain = KeyedBulkheadLayer::from_config(&config, key as fn(&String) -> String).unwrap();
    let built = BulkheadLayer::builder()
        .keyed_config(&config)
        .build_keyed(key as fn(&String) -> String)
        .unwrap();
    for layer in [plain, built] {
        let handle = layer.handle();
        let mut svc = ServiceBuilder::new()
            .layer(layer)
            .service_fn(|s: String| async move { Ok::<_, std::io::Error>(s) });
        for key in ["research", "writing"] {
            svc.ready()
                .await
                .unwrap()
                .call(key.to_owned())
                .await
                .unwrap();
        }
        assert_eq!(handle.name(), "agents");
        let research = handle.get(&"research".to_owned()).unwrap();
        assert_eq!(research.max_concurrent(), 1, "the named configuration");
        let writing = handle.get(&"writing".to_owned()).unwrap();
        assert_eq!(writing.max_concurrent(), 3, "the default");
    }
}

#[test]
fn from_config_takes_a_reference_or_a_value() {
    let config = BulkheadConfig {
        name: "llm".into(),
        max_concurrent: 2,
        ..BulkheadConfig::default()
    };
    let by_ref = BulkheadLayer::from_config(&config).unwrap();
    let by_value = BulkheadLayer::from_config(config.clone()).unwrap();
    assert_eq!(by_ref.handle().max_concurrent(), 2);
    assert_eq!(by_value.name(), "llm");
    let bad = BulkheadConfig {
        max_concurrent: 0,
        ..config
    };
    assert!(BulkheadLayer::from_config(&bad).is_err());
}

#[tokio::test(start_paused = true)]
async fn the_http_client_preset_answers_a_full_compartment_with_an_error() {
    let layer = BulkheadLayer::builder()
        .name("upstream")
        .max_concurrent(1)
        .http_client()
        .build()
        .unwrap();
    let handle = layer.handle();
    let mut svc = ServiceBuilder::new()
        .layer(layer)
        .service_fn(|_: http::Request<()>| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, std::io::Error>(http::Response::new(()))
        });
    let first = svc.ready().await.unwrap().call(http::Request::new(()));
    let first = tokio::spawn(first);
    tokio::task::yield_now().await;
    assert_eq!(handle.in_flight(), 1);
    let err = svc
        .ready()
        .await
        .unwrap()
        .call(http::Request::new(()))
        .await
        .unwrap_err();
    assert!(err.downcast_ref::<Rejected>().is_some());
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(first.await.unwrap().is_ok());
}

#[test]
#[allow(deprecated)]
fn the_old_spellings_still_build() {
    let config = config();
    let layer = BulkheadLayer::keyed_from_config(config, |s: &String| s.clone())
        .unwrap()
        .http();
    assert_eq!(layer.handle().name(), "agents");
    let single = BulkheadLayer::builder().build().unwrap().grpc();
    assert_eq!(single.name(), "default");
}
