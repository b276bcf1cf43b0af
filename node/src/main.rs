//! The `agora` binary.

use clap::Parser;

fn main() {
    let cli = agora_node::cli::Cli::parse();
    let json = cli.json;
    let result = actix_rt::System::new().block_on(agora_node::cli::run(cli));
    if let Err(e) = result {
        if json {
            println!("{}", serde_json::json!({"error": format!("{e:#}")}));
        } else {
            eprintln!("error: {e:#}");
        }
        std::process::exit(1);
    }
}
