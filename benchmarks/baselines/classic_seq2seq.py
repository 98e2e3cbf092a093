"""The classic way, for comparison: a tutorial-style attention seq2seq, written here from the well-known recipe.

It follows the structure of the widely used PyTorch tutorial model (bentrevett/pytorch-seq2seq, notebook 3,
"Neural Machine Translation by Jointly Learning to Align and Translate"): time-major tensors, a bi-GRU encoder, an
attention that concatenates the repeated decoder state with every encoder output at every step, a decoder whose
output layer reads [GRU output; context; embedding] straight into the vocabulary, a Python teacher-forcing loop in
training, and greedy decoding of one sentence at a time. It is benchmark-only code, not part of the package.
"""

import random

import torch
from torch import nn


class ClassicEncoder(nn.Module):
    def __init__(self, vocab_size: int, embedding_size: int, hidden_size: int, dropout: float):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_size)
        self.rnn = nn.GRU(embedding_size, hidden_size, bidirectional=True)
        self.fc = nn.Linear(2 * hidden_size, hidden_size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embedded = self.dropout(self.embedding(src))  # (src_len, batch, emb)
        outputs, hidden = self.rnn(embedded)  # (src_len, batch, 2 * hidden), (2, batch, hidden)
        hidden = torch.tanh(self.fc(torch.cat([hidden[-2], hidden[-1]], dim=1)))  # (batch, hidden)
        return outputs, hidden


class ClassicAttention(nn.Module):
    def __init__(self, hidden_size: int):
        super().__init__()
        self.attn = nn.Linear(3 * hidden_size, hidden_size)
        self.v = nn.Linear(hidden_size, 1, bias=False)

    def forward(self, hidden: torch.Tensor, encoder_outputs: torch.Tensor) -> torch.Tensor:
        src_len = encoder_outputs.shape[0]
        hidden = hidden.unsqueeze(1).repeat(1, src_len, 1)  # (batch, src_len, hidden)
        encoder_outputs = encoder_outputs.permute(1, 0, 2)  # (batch, src_len, 2 * hidden)
        energy = torch.tanh(self.attn(torch.cat([hidden, encoder_outputs], dim=2)))  # (batch, src_len, hidden)
        return torch.softmax(self.v(energy).squeeze(2), dim=1)  # (batch, src_len)


class ClassicDecoder(nn.Module):
    def __init__(self, vocab_size: int, embedding_size: int, hidden_size: int, dropout: float):
        super().__init__()
        self.attention = ClassicAttention(hidden_size)
        self.embedding = nn.Embedding(vocab_size, embedding_size)
        self.rnn = nn.GRU(2 * hidden_size + embedding_size, hidden_size)
        self.fc_out = nn.Linear(3 * hidden_size + embedding_size, vocab_size)
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, input: torch.Tensor, hidden: torch.Tensor, encoder_outputs: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        embedded = self.dropout(self.embedding(input.unsqueeze(0)))  # (1, batch, emb)
        weights = self.attention(hidden, encoder_outputs).unsqueeze(1)  # (batch, 1, src_len)
        weighted = torch.bmm(weights, encoder_outputs.permute(1, 0, 2)).permute(1, 0, 2)  # (1, batch, 2 * hidden)
        output, hidden = self.rnn(torch.cat([embedded, weighted], dim=2), hidden.unsqueeze(0))
        prediction = self.fc_out(torch.cat([output.squeeze(0), weighted.squeeze(0), embedded.squeeze(0)], dim=1))
        return prediction, hidden.squeeze(0)  # (batch, vocab), (batch, hidden)


class ClassicSeq2Seq(nn.Module):
    def __init__(self, vocab_size: int, embedding_size: int, hidden_size: int, dropout: float = 0.1):
        super().__init__()
        self.encoder = ClassicEncoder(vocab_size, embedding_size, hidden_size, dropout)
        self.decoder = ClassicDecoder(vocab_size, embedding_size, hidden_size, dropout)
        for name, param in self.named_parameters():  # the tutorial's init
            nn.init.normal_(param, mean=0, std=0.01) if "weight" in name else nn.init.constant_(param, 0)

    def forward(self, src: torch.Tensor, trg: torch.Tensor, teacher_forcing_ratio: float = 0.5) -> torch.Tensor:
        """src `(src_len, batch)`, trg `(trg_len, batch)` starting with BOS -> logits `(trg_len, batch, vocab)`."""
        trg_len, batch_size = trg.shape
        outputs = torch.zeros(trg_len, batch_size, self.decoder.fc_out.out_features, device=src.device)
        encoder_outputs, hidden = self.encoder(src)
        input = trg[0]
        for t in range(1, trg_len):
            output, hidden = self.decoder(input, hidden, encoder_outputs)
            outputs[t] = output
            input = trg[t] if random.random() < teacher_forcing_ratio else output.argmax(1)
        return outputs


def classic_training_step(
    model: ClassicSeq2Seq, optimizer: torch.optim.Optimizer, src: torch.Tensor, trg: torch.Tensor, pad_token_id: int
) -> float:
    """The tutorial's `train` loop body (with its gradient clipping at 1)."""
    optimizer.zero_grad()
    output = model(src, trg)
    loss = nn.functional.cross_entropy(
        output[1:].flatten(0, 1), trg[1:].flatten(), ignore_index=pad_token_id
    )  # position 0 is BOS
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    return loss.item()


@torch.no_grad()
def classic_translate(
    model: ClassicSeq2Seq,
    src_ids: list[int],
    bos_token_id: int,
    eos_token_id: int,
    max_len: int,
    ban_eos: bool = False,
) -> list[int]:
    """The tutorial's `translate_sentence`: one sentence, greedy, a Python loop; `ban_eos` forces `max_len` steps."""
    device = next(model.parameters()).device
    src = torch.tensor(src_ids, device=device).unsqueeze(1)  # (src_len, 1)
    encoder_outputs, hidden = model.encoder(src)
    trg_ids = [bos_token_id]
    for _ in range(max_len):
        output, hidden = model.decoder(torch.tensor([trg_ids[-1]], device=device), hidden, encoder_outputs)
        if ban_eos:
            output[:, eos_token_id] = -float("inf")
        trg_ids.append(output.argmax(1).item())
        if trg_ids[-1] == eos_token_id:
            break
    return trg_ids[1:]
