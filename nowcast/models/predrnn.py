"""PredRNN (Wang et al. 2017): a stack of ST-LSTM layers with the zigzag memory M.

One stack reads the T_in input frames and then its own predictions (or, under scheduled
sampling, the true frames): T_in + n_out − 1 steps in all. At each step the spatiotemporal
memory M climbs the stack bottom → top, and the top layer's M at step t−1 becomes the
bottom layer's M^{0} at step t (the zigzag). The top hidden state goes through a 1×1
convolution (clamped to [0, 1], see ``Nowcaster.emit``; with ``model.residual``, added
to the step's input frame) to give the next (patched) frame; predictions start at the
last input step. Subclasses (MIM) swap the layers and
the state they carry.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from nowcast.config.model import ModelConfig
from nowcast.models.base import Nowcaster, widths
from nowcast.models.stlstm import STLSTMCell

State = dict[str, list[Tensor]]


class PredRNNNowcaster(Nowcaster):
    """ST-LSTM stack with zigzag memory; every layer has ``hidden`` channels."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)
        self.hidden = widths(cfg)[0]
        self.cells = nn.ModuleList(self._make_cells(cfg))
        self.head = nn.Conv2d(self.hidden, self.frame_channels, 1)

    def _make_cells(self, cfg: ModelConfig) -> list[nn.Module]:
        ins = [self.frame_channels] + [self.hidden] * (cfg.layers - 1)
        return [STLSTMCell(c, self.hidden, cfg.kernel, cfg.forget_bias) for c in ins]

    def _init_state(self, like: Tensor) -> State:
        n = len(self.cells)
        z = [self.zeros(like, self.hidden) for _ in range(2 * n + 1)]
        return {"h": z[:n], "c": z[n : 2 * n], "m": z[2 * n :]}

    def _step(self, x: Tensor, st: State) -> Tensor:
        """One time step through the stack (updating ``st`` in place); returns the top H."""
        m = st["m"][0]
        for i, cell in enumerate(self.cells):
            st["h"][i], st["c"][i], m = cell(x, st["h"][i], st["c"][i], m)
            x = st["h"][i]
        st["m"][0] = m  # the zigzag: top of step t → bottom of step t+1
        return x

    def _run(
        self,
        x: Tensor,
        n_out: int,
        truth: Tensor | None,
        mask: Tensor | None,
        prior: Tensor | None = None,  # model.advection is ConvLSTM-only (check_config)
    ) -> Tensor:
        t_in = x.shape[1]
        st = self._init_state(x[:, 0])
        outs: list[Tensor] = []
        for t in range(t_in + n_out - 1):
            inp = x[:, t] if t < t_in else self.next_input(outs[-1], truth, mask, t - t_in)
            top = self._step(inp, st)
            if t >= t_in - 1:
                outs.append(self.predict_frame(self.head(top), inp))
        return torch.stack(outs, dim=1)
