"""EU868 regional parameters (RP002) and LoRa time on air (fact sheet §6)."""

from __future__ import annotations

import pytest

from otaharness.protocols.lorawan import EU868, LoRaWANError, frame_time_on_air_s, lora_time_on_air_s
from otaharness.protocols.lorawan.region import (
    Modulation,
    cf_list_from_frequencies,
    frequencies_from_cf_list,
    frequency_from_wire,
    frequency_to_wire,
)


class TestEU868:
    def test_data_rates(self) -> None:
        lora = [(dr.spreading_factor, dr.bandwidth_hz) for dr in EU868.data_rates[:7]]
        assert lora == [(12, 125_000), (11, 125_000), (10, 125_000), (9, 125_000), (8, 125_000), (7, 125_000),
                        (7, 250_000)]
        assert EU868.data_rate(7).modulation is Modulation.FSK
        assert EU868.lora_data_rate_index(7, 250_000) == 6

    @pytest.mark.parametrize(("dr", "repeater", "m", "n"), [
        (0, True, 59, 51), (2, True, 59, 51), (3, True, 123, 115), (5, True, 230, 222), (5, False, 250, 242),
        (7, False, 250, 242),
    ])
    def test_max_payload_sizes(self, dr: int, repeater: bool, m: int, n: int) -> None:
        data_rate = EU868.data_rate(dr)
        assert data_rate.max_mac_payload_size(repeater_compatible=repeater) == m
        assert data_rate.max_frm_payload_size(repeater_compatible=repeater) == n

    def test_largest_data_fragment_payloads(self) -> None:
        # Fact sheet §6: N - 3 (CID + IndexAndN) = 219 at DR5 repeater-compatible, 48 at DR0-2.
        assert EU868.data_rate(5).max_frm_payload_size() - 3 == 219
        assert EU868.data_rate(2).max_frm_payload_size() - 3 == 48

    @pytest.mark.parametrize(("uplink_dr", "offset", "rx1_dr"), [
        (5, 0, 5), (5, 2, 3), (5, 5, 0), (2, 3, 0), (7, 5, 2), (0, 0, 0)])
    def test_rx1_data_rate(self, uplink_dr: int, offset: int, rx1_dr: int) -> None:
        assert EU868.rx1_data_rate(uplink_dr, offset) == rx1_dr

    def test_rx1_offset_out_of_range(self) -> None:
        with pytest.raises(LoRaWANError, match="RX1DROffset 6"):
            EU868.rx1_data_rate(5, 6)
        with pytest.raises(LoRaWANError, match="DR8"):
            EU868.rx1_data_rate(8, 0)

    def test_defaults(self) -> None:
        assert EU868.default_channels_hz == (868_100_000, 868_300_000, 868_500_000)
        assert (EU868.rx2_frequency_hz, EU868.rx2_data_rate) == (869_525_000, 0)
        assert (EU868.receive_delay1_s, EU868.receive_delay2_s) == (1, 2)
        assert (EU868.join_accept_delay1_s, EU868.join_accept_delay2_s) == (5, 6)

    @pytest.mark.parametrize(("frequency", "name", "limit"), [
        (868_100_000, "g1", 0.01), (868_500_000, "g1", 0.01), (869_525_000, "g3", 0.10),
        (868_800_000, "g2", 0.001), (869_850_000, "g4", 0.01), (864_000_000, "g (863.0-865.0)", 0.001),
        (867_100_000, "g (865.0-868.0)", 0.01)])
    def test_duty_cycle_sub_bands(self, frequency: int, name: str, limit: float) -> None:
        sub_band = EU868.sub_band(frequency)
        assert (sub_band.name, sub_band.duty_cycle) == (name, limit)

    def test_gap_between_sub_bands(self) -> None:
        with pytest.raises(LoRaWANError, match="no EU868 duty-cycle sub-band"):
            EU868.sub_band(868_650_000)

    def test_off_time(self) -> None:
        assert EU868.sub_band(868_100_000).off_time_s(0.5) == pytest.approx(49.5)
        assert EU868.sub_band(869_525_000).off_time_s(1.0) == pytest.approx(9.0)

    def test_tx_power(self) -> None:
        assert EU868.tx_power_dbm(0) == 16
        assert EU868.tx_power_dbm(7) == 2
        with pytest.raises(LoRaWANError):
            EU868.tx_power_dbm(8)


class TestFrequencyFields:
    def test_rx2_frequency_encoding(self) -> None:
        # Fact sheet §1: 869.525 MHz -> 8 695 250 = 0x84ADD2 -> D2 AD 84.
        assert frequency_to_wire(869_525_000) == bytes.fromhex("d2ad84")
        assert frequency_from_wire(bytes.fromhex("d2ad84")) == 869_525_000

    def test_not_a_multiple_of_100_hz(self) -> None:
        with pytest.raises(LoRaWANError, match="multiple"):
            frequency_to_wire(868_100_050)

    def test_cf_list(self) -> None:
        frequencies = (867_100_000, 867_300_000, 867_500_000)
        cf_list = cf_list_from_frequencies(frequencies)
        assert cf_list == bytes.fromhex("184f84" "e85684" "b85e84" "000000" "000000" "00")
        assert frequencies_from_cf_list(cf_list) == frequencies


class TestTimeOnAir:
    # Fact sheet §6 table (downlinks without PHY CRC, uplinks with).
    @pytest.mark.parametrize(("sf", "length", "uplink", "milliseconds"), [
        (7, 216, False, 338.176),
        (7, 216, True, 343.296),
        (7, 235, False, 368.896),
        (12, 64, False, 2793.472),
        (9, 128, False, 676.864),
        (12, 13, True, 1155.072),
        (7, 13, True, 46.336),  # Semtech calculator figure for a 13-octet frame at SF7/125
    ])
    def test_sheet_figures(self, sf: int, length: int, uplink: bool, milliseconds: float) -> None:
        data_rate = EU868.data_rate(EU868.lora_data_rate_index(sf, 125_000))
        assert frame_time_on_air_s(length, data_rate, uplink=uplink) * 1000 == pytest.approx(milliseconds, abs=1e-6)

    def test_low_data_rate_optimisation_only_for_long_symbols(self) -> None:
        with_de = lora_time_on_air_s(51, spreading_factor=11, bandwidth_hz=125_000, crc=True)
        forced_off = lora_time_on_air_s(51, spreading_factor=11, bandwidth_hz=125_000, crc=True,
                                        low_data_rate_optimization=False)
        assert with_de > forced_off
        at_250 = lora_time_on_air_s(51, spreading_factor=11, bandwidth_hz=250_000, crc=True)
        assert at_250 == lora_time_on_air_s(51, spreading_factor=11, bandwidth_hz=250_000, crc=True,
                                            low_data_rate_optimization=False)

    def test_sf7_250khz_is_half_of_125khz_time(self) -> None:
        assert frame_time_on_air_s(20, EU868.data_rate(6), uplink=True) * 2 == pytest.approx(
            frame_time_on_air_s(20, EU868.data_rate(5), uplink=True))

    def test_fsk_is_rejected(self) -> None:
        with pytest.raises(LoRaWANError, match="FSK"):
            frame_time_on_air_s(20, EU868.data_rate(7), uplink=True)

    def test_bad_parameters(self) -> None:
        with pytest.raises(LoRaWANError, match="spreading factor"):
            lora_time_on_air_s(10, spreading_factor=13, bandwidth_hz=125_000, crc=True)
        with pytest.raises(LoRaWANError, match="payload length"):
            lora_time_on_air_s(256, spreading_factor=7, bandwidth_hz=125_000, crc=True)
