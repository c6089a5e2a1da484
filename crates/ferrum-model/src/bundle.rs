//! A model ready to build: checked config, weights, tokenizer, chat template and sampling
//! defaults, from a Hugging Face folder or a GGUF file.

use std::path::Path;

use ferrum_tokenizer::{ChatTemplate, ChatTemplateInput, Tokenizer, TokenizerFiles};
use serde_json::json;

use crate::arch::config_from_hf;
use crate::config::{HfConfig, ModelConfig};
use crate::error::{ModelError, Result};
use crate::files::ModelFiles;
use crate::generation::GenerationDefaults;
use crate::gguf_config::{config_from_gguf, vocab_from_gguf};
use crate::weights::{open_weights, WeightSource};

pub struct ModelBundle {
    pub files: ModelFiles,
    pub config: ModelConfig,
    pub weights: Box<dyn WeightSource>,
    pub tokenizer: Tokenizer,
    /// The default chat template's source, when the model has one.
    pub chat_template: Option<String>,
    pub generation: GenerationDefaults,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| ModelError::Json {
        path: path.to_path_buf(),
        source,
    })
}

impl ModelBundle {
    pub fn open(path: &Path) -> Result<Self> {
        Self::from_files(ModelFiles::discover(path)?)
    }

    pub fn from_files(files: ModelFiles) -> Result<Self> {
        if files.is_gguf() {
            return Self::from_gguf(files);
        }
        let config_path = files.file("config.json").ok_or_else(|| {
            ModelError::Files(format!("{}: no config.json", files.path.display()))
        })?;
        let hf: HfConfig = read_json(&config_path)?;
        let mut config = config_from_hf(&hf)?;
        let weights = open_weights(&files.path)?;
        let loaded = TokenizerFiles::discover(&files.path)?.load()?;
        let generation = match files.file("generation_config.json") {
            Some(p) => GenerationDefaults::read(&p)?,
            None => GenerationDefaults::default(),
        };
        // generation_config.json's EOS list is what generation stops on (it is often longer
        // than config.json's, e.g. Llama-3's <|eot_id|>).
        let gen_eos = generation.eos_token_ids();
        if !gen_eos.is_empty() {
            config.eos_token_ids = gen_eos;
        }
        Ok(Self {
            chat_template: loaded.chat_templates.default_template().map(str::to_string),
            files,
            config,
            weights,
            tokenizer: loaded.tokenizer,
            generation,
        })
    }

    fn from_gguf(files: ModelFiles) -> Result<Self> {
        let weights = open_weights(&files.path)?;
        let md = weights.gguf_metadata().ok_or_else(|| {
            ModelError::Files(format!("{}: not a GGUF file", files.path.display()))
        })?;
        let config = config_from_gguf(md, weights.as_ref())?;
        let tokenizer = Tokenizer::from_gguf_vocab(vocab_from_gguf(md)?)?;
        let chat_template = md
            .opt_str("tokenizer.chat_template")
            .map_err(ModelError::from)?
            .map(str::to_string);
        Ok(Self {
            files,
            config,
            weights,
            tokenizer,
            chat_template,
            generation: GenerationDefaults::default(),
        })
    }

    /// Token ids that end generation: the config's EOS ids, else the tokenizer's.
    pub fn eos_token_ids(&self) -> Vec<u32> {
        if !self.config.eos_token_ids.is_empty() {
            return self.config.eos_token_ids.clone();
        }
        self.tokenizer.eos_token_id().into_iter().collect()
    }

    /// Compiles the model's chat template with its special tokens.
    pub fn compile_chat_template(&self) -> Result<ChatTemplate> {
        let source = self.chat_template.as_deref().ok_or_else(|| {
            ModelError::Files(
                "the model has no chat template (give one with --chat-template)".into(),
            )
        })?;
        let tok = |id: Option<u32>| id.and_then(|i| self.tokenizer.id_to_token(i));
        Ok(ChatTemplate::new(
            source,
            tok(self.tokenizer.bos_token_id()),
            tok(self.tokenizer.eos_token_id()),
        )?)
    }

    /// Renders a one-turn conversation with the generation prompt.
    pub fn render_chat(&self, system: Option<&str>, user: &str) -> Result<String> {
        let template = self.compile_chat_template()?;
        let mut messages = Vec::new();
        if let Some(s) = system {
            messages.push(json!({"role": "system", "content": s}));
        }
        messages.push(json!({"role": "user", "content": user}));
        let messages = serde_json::Value::Array(messages);
        let mut input = ChatTemplateInput::new(&messages);
        input.add_generation_prompt = true;
        Ok(template.render(&input)?)
    }

    /// Checks that every tensor the decoder needs is present with the expected shape, without
    /// loading anything.
    pub fn check_tensors(&self) -> Result<()> {
        crate::decoder::expected_tensors(&self.config)
            .into_iter()
            .try_for_each(|(name, shape)| match self.weights.info(&name) {
                None => Err(ModelError::Weights(
                    crate::weights::WeightError::MissingTensor {
                        name,
                        in_file: None,
                    },
                )),
                Some(info) if info.shape != shape => Err(ModelError::TensorShape {
                    name,
                    expected: shape,
                    found: info.shape,
                }),
                Some(_) => Ok(()),
            })
    }
}
