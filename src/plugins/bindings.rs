//! The only place bindings are generated from `wit/`: the shared interfaces once (through the
//! all-hooks world), then one world per hook that reuses them.

pub mod all {
    wasmtime::component::bindgen!({ world: "gateway-plugin", path: "wit" });
}

pub mod formatter {
    wasmtime::component::bindgen!({
        world: "number-formatter",
        path: "wit",
        exports: { default: async },
        with: { "wa-gateway:plugin/host": super::all::wa_gateway::plugin::host },
    });
}

pub mod classifier {
    wasmtime::component::bindgen!({
        world: "error-classifier",
        path: "wit",
        exports: { default: async },
        with: {
            "wa-gateway:plugin/host": super::all::wa_gateway::plugin::host,
            "wa-gateway:plugin/types": super::all::wa_gateway::plugin::types,
        },
    });
}

pub mod templater {
    wasmtime::component::bindgen!({
        world: "message-templater",
        path: "wit",
        exports: { default: async },
        with: { "wa-gateway:plugin/host": super::all::wa_gateway::plugin::host },
    });
}

pub mod prioritizer {
    wasmtime::component::bindgen!({
        world: "priority-assigner",
        path: "wit",
        exports: { default: async },
        with: {
            "wa-gateway:plugin/host": super::all::wa_gateway::plugin::host,
            "wa-gateway:plugin/types": super::all::wa_gateway::plugin::types,
        },
    });
}

pub mod pacer {
    wasmtime::component::bindgen!({
        world: "pacer",
        path: "wit",
        exports: { default: async },
        with: {
            "wa-gateway:plugin/host": super::all::wa_gateway::plugin::host,
            "wa-gateway:plugin/types": super::all::wa_gateway::plugin::types,
        },
    });
}

pub mod responder {
    wasmtime::component::bindgen!({
        world: "responder",
        path: "wit",
        exports: { default: async },
        with: {
            "wa-gateway:plugin/host": super::all::wa_gateway::plugin::host,
            "wa-gateway:plugin/types": super::all::wa_gateway::plugin::types,
        },
    });
}

pub use all::wa_gateway::plugin::host::{Host, Level};
pub use all::wa_gateway::plugin::types::{
    Failure, Outgoing, PaceRequest, PaceVerdict, Priority, Received, Sent, Verdict,
};
