use serde_json::Value;

/// How a command prints: text for people or JSON for programs.
#[derive(Debug, Clone, Copy)]
pub struct Out {
    pub json: bool,
}

impl Out {
    /// Print `value` as JSON, or the text `human` builds.
    pub fn print(&self, value: &Value, human: impl FnOnce() -> String) {
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(value).unwrap_or_default()
            );
        } else {
            println!("{}", human());
        }
    }

    /// Progress for people; silent in JSON mode so stdout stays one JSON document.
    pub fn progress(&self, line: &str) {
        if !self.json {
            eprintln!("{line}");
        }
    }
}

/// rao as "1.5 TAO".
pub fn tao(v: &Value) -> String {
    v.as_u64()
        .map(|r| format!("{} TAO", agora_core::format_tao(r)))
        .unwrap_or_else(|| v.to_string())
}

/// A JSON string without quotes; anything else as JSON text.
pub fn text(v: &Value) -> String {
    v.as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string())
}

impl agora_testnet::bench::Report for Out {
    fn progress(&self, line: &str) {
        Out::progress(self, line);
    }

    fn result(&self, json: &Value, text: &str) {
        self.print(json, || text.to_string());
    }

    fn json(&self) -> bool {
        self.json
    }
}
