//! Every JSON configuration reader, then the layer built from what was read: any input is a
//! typed error or a layer, never a panic. The first byte picks the reader.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(json) = std::str::from_utf8(rest) else {
        return;
    };
    match selector % 6 {
        0 => {
            if let Ok(config) = serde_json::from_str::<tower_breaker::CircuitBreakerConfig>(json) {
                let _ = tower_breaker::CircuitBreakerLayer::from_config(config);
            }
        }
        1 => {
            if let Ok(config) = serde_json::from_str::<tower_bulkhead::BulkheadConfig>(json) {
                let _ = tower_bulkhead::BulkheadLayer::from_config(config);
            }
        }
        2 => {
            if let Ok(config) = serde_json::from_str::<tower_bulkhead::KeyedBulkheadConfig>(json) {
                let _ = tower_bulkhead::BulkheadLayer::keyed_from_config(config, |r: &u64| *r);
            }
        }
        3 => {
            if let Ok(config) = serde_json::from_str::<tower_heal::RetryConfig>(json) {
                let _ = tower_heal::RetryLayer::from_config(config);
            }
        }
        4 => {
            if let Ok(config) = tower_chaos::ChaosConfig::from_json(json) {
                let _ = config.layer::<u64, u64>();
            }
        }
        _ => {
            if let Ok(suite) = tower_chaos::experiment::SuiteConfig::from_json(json) {
                if let Ok(experiments) = suite.experiments() {
                    for experiment in experiments {
                        let _ = suite.layer::<u64, u64>(experiment.name());
                    }
                }
            }
        }
    }
});
