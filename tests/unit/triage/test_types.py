"""Dispute types from colloquial wording (no formal terms), one case per line."""

from __future__ import annotations

import pytest

from services.triage.rules import Rules

from .conftest import triage

CASES = [
    ("labour", "包工头带着我们干了半年，结账时说甲方没给钱，一分都没拿到"),
    ("labour", "在餐馆当服务员，老板不签合同，也不交保险，现在让我走人"),
    ("labour", "厂里流水线上切断了两根手指，老板说是我自己不小心"),
    ("labour", "试用期满了公司说不合格，不给转正也不给补偿"),
    ("medical", "孩子在诊所打完吊针后浑身起疹子，诊所说是过敏体质"),
    ("medical", "在镇卫生院拔了颗牙，结果拔错了，要求赔偿"),
    ("medical", "母亲在县人民医院做完手术第二天就去世了，家属要个说法"),
    ("property_mgmt", "小区垃圾没人清运，物业费照收不误"),
    ("property_mgmt", "地下车库的灯坏了半年，找管理处也不修"),
    ("land", "村里重新分地，把我家的地分少了两亩"),
    ("land", "邻村的人把界桩往我们这边挪了好几米"),
    ("land", "拆迁评估价太低，和拆迁办谈不拢"),
    ("marriage_family", "老公在外面有人了，要跟我分家产"),
    ("marriage_family", "爷爷留下的老房子，三个叔伯都想要"),
    ("marriage_family", "女儿出嫁时男方给的八万八，现在离了要我们退"),
    ("neighbour", "隔壁家装空调，外机对着我家窗户吹热风"),
    ("neighbour", "楼上小孩天天在家拍球，咚咚响"),
    ("neighbour", "对面那户把电动车推进楼道里充电，怕着火"),
    ("debt_contract", "表哥找我拿了三万块周转，说好年底还，现在人找不到了"),
    ("debt_contract", "给别人做了担保，借钱的人跑了，债主找我还钱"),
    ("debt_contract", "合伙开饭店亏了，合伙人不肯分担损失"),
    ("traffic", "下班骑电瓶车被一辆面包车别倒了"),
    ("traffic", "停在路边的车被人倒车撞了，对方不承认"),
    ("consumer", "在网上买的衣服跟图片不一样，店家不给退"),
    ("consumer", "办的游泳卡还剩二十次，游泳馆说要装修关门，不退钱"),
    ("consumer", "理发店推销办卡，说不办就不给剪完"),
    ("public_order", "晚上有人在我家门口撒尿，还骂人"),
    ("public_order", "几个年轻人在广场上拿酒瓶互相扔，砸坏了路灯"),
    ("public_order", "有人在网上发帖说我坏话，还P了我的照片"),
    ("labour", "跟着老乡在外面搞装修，活干完了，工头说钱还没结下来，拖了三个月"),
    ("labour", "快递站的分拣员被无故开了，押金也不退"),
    ("labour", "在养殖场喂猪，老板年底说亏了，只发一半工钱"),
    ("medical", "去私人牙诊所补牙，补完以后牙疼得更厉害了，去大医院一查说是补坏了"),
    ("medical", "孕检时医生没查出胎儿有问题，孩子生下来有缺陷"),
    ("medical", "在中医馆做艾灸被烫出好几个水泡"),
    ("property_mgmt", "物管把小区的公共车位租给外面的人，业主反而没地方停"),
    ("property_mgmt", "家里水管漏了打电话给物业，物业三天都没派人来修"),
    ("land", "村里修路要占我家两分田，补偿款一直没到位"),
    ("land", "我家承包的荒山被邻组的人种上了树"),
    ("land", "祖坟旁边被人开了地，两家吵起来"),
    ("marriage_family", "媳妇带着孩子回娘家快一年了，叫也叫不回来"),
    ("marriage_family", "三个儿子都不管老娘，老人住在猪圈旁边的偏房里"),
    ("marriage_family", "哥哥把爸妈的房子偷偷过户到自己名下"),
    ("neighbour", "楼上那家天天往下面倒水，我家晒的衣服都湿了"),
    ("neighbour", "隔壁养了十几只鸽子，到处是鸽子屎"),
    ("neighbour", "邻居家的树根把我家的院墙顶裂了"),
    ("debt_contract", "卖给收购站的玉米，对方打了欠条，拖了半年不给钱"),
    ("debt_contract", "房东不退押金，说墙被我弄脏了"),
    ("debt_contract", "朋友用我的身份证办了信用卡，刷了两万不还"),
    ("traffic", "在村口被一辆拖拉机蹭了，腿上擦破了皮"),
    ("traffic", "送孩子上学路上，电动车跟小车撞上了，车灯碎了"),
    ("consumer", "超市卖的鸡蛋一半都是坏的，找超市不给换"),
    ("consumer", "在手机店换屏幕，换了个翻新屏还收原装的钱"),
    ("consumer", "报了个旅游团，导游强迫我们进店购物"),
    ("public_order", "喝醉的人在饭店门口闹事，砸了人家的玻璃门"),
    ("public_order", "有人天天给我打骚扰电话，还发短信骂我"),
    ("public_order", "几个人在村里开设赌场，输了钱的人闹起来"),
]


@pytest.mark.parametrize(("expected", "text"), CASES)
def test_colloquial_type(rules: Rules, expected: str, text: str) -> None:
    assert triage(rules, text).dispute_type == expected
